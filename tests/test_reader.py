"""The reader on event files written by the real torch SummaryWriter and real tf.summary."""
import numpy as np
import pytest

from unitb import reader


def _write_torch(path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(path))
    for step in (1, 2, 3):
        writer.add_scalar("train/loss", 1.0 / step, step)
    writer.add_histogram("weights/a", np.arange(100, dtype=np.float32), 3)
    writer.add_image("train/image", np.full((8, 6, 3), 200, np.uint8), 3, dataformats="HWC")
    writer.close()


def _write_tf(path):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(path))
    with writer.as_default():
        for step in (1, 2, 3):
            tf.summary.scalar("train/loss", 1.0 / step, step=step)
        tf.summary.histogram("weights/a", np.arange(100, dtype=np.float32), step=3)
        tf.summary.image("train/image", np.full((1, 8, 6, 3), 200, np.uint8), step=3)
        tf.summary.text("config", "hello", step=0)
    writer.close()


@pytest.mark.parametrize("write", [_write_torch, _write_tf])
def test_both_frameworks_read_back_the_same(tmp_path, write):
    write(tmp_path)
    rows = reader.read_run(str(tmp_path))
    loss = [(r.step, r.value) for r in rows if r.tag == "train/loss"]
    assert [s for s, _ in loss] == [1, 2, 3]
    np.testing.assert_allclose([v for _, v in loss], [1.0, 0.5, 1 / 3], rtol=1e-6)
    hist = [r for r in rows if r.tag == "weights/a"]
    assert len(hist) == 1 and hist[0].kind == "histogram" and hist[0].step == 3
    assert hist[0].value[:, 2].sum() == pytest.approx(100)
    image = [r for r in rows if r.tag.startswith("train/image")]
    assert image[0].kind == "image" and (image[0].value["width"], image[0].value["height"]) == (6, 8)
    assert reader.decode_png(image[0].value)[0, 0].tolist() == [200, 200, 200]
    assert all(r.kind == "scalar" for r in rows if r.tag == "train/loss")


def test_text_rows(tmp_path):
    _write_tf(tmp_path)
    text = [r for r in reader.read_run(str(tmp_path)) if r.kind == "text"]
    assert text[0].tag == "config" and text[0].value == "hello"


def test_torn_last_record_keeps_everything_before_it(tmp_path):
    _write_torch(tmp_path)
    path = reader.event_files(str(tmp_path))[0]
    whole = reader.read_run(str(tmp_path))
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:-7])  # a crash in the middle of the last record
    torn = reader.read_run(str(tmp_path))
    assert len(torn) == len(whole) - 1
    assert [(r.tag, r.step) for r in torn] == [(r.tag, r.step) for r in whole[:-1]]


def test_find_runs_and_summary(tmp_path):
    _write_torch(tmp_path / "a")
    _write_tf(tmp_path / "b")
    _write_torch(tmp_path / "a" / ".unitb-removed" / "20261203-000000")  # set aside by a resume: no run
    assert reader.find_runs(str(tmp_path)) == [str(tmp_path / "a"), str(tmp_path / "b")]
    table = {e["tag"]: e for e in reader.summarize(reader.read_run(str(tmp_path / "a")))}
    assert table["train/loss"]["count"] == 3 and table["train/loss"]["first_step"] == 1
    assert table["train/loss"]["last_step"] == 3


def test_event_files_are_ordered_by_writer_counter_as_a_number(tmp_path):
    for name in ("events.out.tfevents.1700000000.host.7.10", "events.out.tfevents.1700000000.host.7.9",
                 "events.out.tfevents.1699999999.unitb-resumed-4", "events.out.tfevents.1700000001.host.7.2"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in reader.event_files(str(tmp_path))] == [
        "events.out.tfevents.1699999999.unitb-resumed-4", "events.out.tfevents.1700000000.host.7.9",
        "events.out.tfevents.1700000000.host.7.10", "events.out.tfevents.1700000001.host.7.2"]


@pytest.mark.parametrize("values", [np.random.default_rng(0).normal(size=5000), np.ones(7), np.arange(31.0), []])
def test_histogram_buckets_equal_tensorboards_own(values):
    """The TF sink buckets weights in numpy; TensorBoard must see what tf.summary.histogram writes."""
    from tensorboard.plugins.histogram import summary_v2
    from tensorboard.util import tensor_util

    from unitb.write import protos

    expected = tensor_util.make_ndarray(summary_v2.histogram_pb("t", np.asarray(values)).value[0].tensor)
    assert np.allclose(protos.histogram_buckets(values), expected)
    written = protos.histogram_summary("t", values).value[0]
    assert written.metadata.plugin_data.plugin_name == "histograms"
