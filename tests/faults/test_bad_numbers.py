"""NaN/Inf in losses, gradients and weights: an anomaly record and one warning, never a crash."""
import warnings

import numpy as np
import pytest
import torch

from torch_adapter import TorchLogger
from unitb import UnitbWarning, schema
from unitb import reader
from unitb.write.writer import RunLogger


def _values(rows, tag):
    return {r.step: r.value for r in rows if r.tag == tag}


def test_nonfinite_gradients_and_weights(tmp_path):
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logger = TorchLogger(str(tmp_path), model=model, optimizer=optimizer, grad_norm_interval=1, scalar_interval=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2):
            loss = model(torch.full((2, 3), float("inf"))).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()  # inf gradients -> NaN weights
            logger.log_step(step, loss=loss)
        logger.log_epoch(2, 1)
        logger.close()
    rows = reader.read_run(str(tmp_path))
    assert _values(rows, "train/anomaly/gradients") == {1: 1.0, 2: 1.0}
    assert set(_values(rows, "train/anomaly/weights")) == {2}
    assert not [r for r in rows if r.tag == schema.GRAD_NORM_GLOBAL]
    messages = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning)]
    assert len([m for m in messages if "non-finite gradients at step 1" in m]) == 1
    assert len([m for m in messages if "non-finite weights at step 2 in layer" in m]) == 1
    assert not [m for m in messages if "step 2 in train/gradient_norm" in m]  # one warning per kind


def test_histograms_drop_nonfinite_values_and_keep_the_rest(tmp_path):
    from event_sink import EventFileSink

    run = RunLogger(EventFileSink(str(tmp_path)))
    with pytest.warns(UnitbWarning, match="non-finite weights at step 3 in layer a"):
        run.histograms(schema.weights_histogram, 3, {"a": np.array([1.0, np.nan, np.inf, 2.0])})
    run.flush()
    rows = reader.read_run(str(tmp_path))
    assert _values(rows, "train/anomaly/weights") == {3: 2.0}
    assert [r.step for r in rows if r.tag == "weights/a"] == [3]
    run.close()


def test_metrics_that_are_not_numbers_are_skipped_with_one_warning(tmp_path):
    from event_sink import EventFileSink

    run = RunLogger(EventFileSink(str(tmp_path)), async_writes=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2):
            run.metrics("val", step, {"AP": 0.5, "per_class": {"a": 1}, "name": "x", "vec": np.ones(3),
                                      "tensor": torch.tensor(0.25), "AP 50 ü": 0.7})
    run.close()
    rows = reader.read_run(str(tmp_path))
    assert _values(rows, "val/AP") == {1: 0.5, 2: 0.5}
    assert _values(rows, "val/tensor") == {1: 0.25, 2: 0.25}
    assert _values(rows, "val/AP_50_u") == {1: pytest.approx(0.7), 2: pytest.approx(0.7)}
    assert not [r for r in rows if r.tag in ("val/per_class", "val/name", "val/vec")]
    skipped = [str(w.message) for w in caught if "is not a number" in str(w.message)]
    assert len(skipped) == 3  # one per bad metric, not one per step


def test_raise_on_nonfinite_is_opt_in(tmp_path):
    from event_sink import EventFileSink

    run = RunLogger(EventFileSink(str(tmp_path)), raise_on_nonfinite=True, async_writes=False)
    with pytest.raises(FloatingPointError, match="step 7"):
        run.scalar("train/loss", float("nan"), 7, "loss")
