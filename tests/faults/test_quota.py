"""max_log_mb: heavy summaries stop with one warning when the run folder passes it."""
import warnings

import numpy as np

from unitb import UnitbWarning, schema
from unitb import reader
from unitb.write.writer import RunLogger


def test_heavy_summaries_stop_at_the_quota_and_scalars_go_on(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from torch_adapter.sink import SummaryWriterSink

    run = RunLogger(SummaryWriterSink(SummaryWriter(str(tmp_path))), max_log_mb=0.05)
    run.QUOTA_CHECK_EVERY = 1
    big = {"a": np.random.default_rng(0).normal(size=50_000)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 31):
            run.scalar("train/loss", 1.0, step)
            run.histograms(schema.weights_histogram, step, big)
            run.image("train", step, lambda step=step: np.random.default_rng(step).integers(0, 255, (64, 64, 3), np.uint8))
            run.flush()
    run.close()
    rows = reader.read_run(str(tmp_path))
    assert [r.step for r in rows if r.tag == "train/loss"] == list(range(1, 31))
    assert run.heavy_stopped
    assert 0 < len([r for r in rows if r.tag == "weights/a"]) < 30
    assert 0 < len([r for r in rows if r.tag == "train/image"]) < 30
    quota = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning) and "max_log_mb" in str(w.message)]
    assert len(quota) == 1 and "scalars go on" in quota[0]
