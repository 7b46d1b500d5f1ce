"""Your own values at unitb's step on all four entry points: scalars, histograms, images (with
overlays), matplotlib figures and text, read back from the event files; bad input is one warning
per tag and is skipped; unitb diff calls the tags the run's own."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from unitb import UnitbWarning
from unitb.read import diff
from unitb import reader


def _by_tag(folder):
    rows = reader.read_run(str(folder))
    out = {}
    for row in rows:
        out.setdefault(row.tag, []).append((row.step, row.kind))
    return out


def _log_everything(entry, step=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entry.log_scalar("my/metric", 0.5, step=step)
    entry.log_scalars({"my/a": 1.0, "my/b": np.float32(2.0)}, step=step)
    entry.log_histogram("my/hist", np.arange(100.0), step=step)
    image = np.zeros((32, 32, 3), np.uint8)
    entry.log_image("my/image", image, step=step, keypoints=np.array([[4.0, 4.0], [20.0, 20.0]]),
                    boxes=np.array([[2, 2, 30, 30]]))
    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    entry.log_figure("my/figure", figure, step=step)
    entry.log_text("my/notes", "**markdown** works", step=step)


def _log_bad(entry):
    for _ in range(3):  # one warning per tag however often
        entry.log_scalar("my/nan", float("nan"))
        entry.log_scalar("my/word", "high")
        entry.log_image("my/flat", np.zeros((5,)))
        entry.log_figure("my/notafigure", object())
        entry.log_text("my/number", 3)


BAD = ("my/nan", "my/word", "my/flat", "my/notafigure", "my/number")
KINDS = {"my/metric": "scalar", "my/a": "scalar", "my/b": "scalar", "my/hist": "histogram", "my/image": "image",
         "my/figure": "image", "my/notes": "text"}


def _check(folder, step, caught):
    tags = _by_tag(folder)
    for tag, kind in KINDS.items():
        assert tags.get(tag) == [(step, kind)], (tag, tags.get(tag))
    assert not [t for t in tags if t in BAD]  # skipped
    said = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning) and "skipped (said once" in
            str(w.message)]
    assert sorted(m.split(":")[1].strip() for m in said) == sorted(BAD), said  # one each


def test_torch_logger_own_values_at_the_current_step(tmp_path):
    import torch

    from torch_adapter import TorchLogger

    model = torch.nn.Linear(2, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = TorchLogger(str(tmp_path / "torch"), model, torch.optim.SGD(model.parameters(), 0.1),
                          scalar_interval=1, log_grad_norm=False, log_speed=False)
        for step in range(1, 4):
            log.log_step(step, loss=float(step))
        _log_everything(log)  # at step 3: the last one logged
        _log_bad(log)
        log.log_scalar("my/later", 7.0, step=10)
        log.close()
    _check(tmp_path / "torch", 3, caught)
    assert reader.scalars(str(tmp_path / "torch"))["my/later"] == [(10, 7.0)]
    picture = reader.decode_png([r for r in reader.read_run(str(tmp_path / "torch")) if r.tag == "my/image"][0].value)
    assert picture.shape[0] >= 128 and (picture[..., 0] > 200).any()  # enlarged, red keypoints drawn


def test_tf_logger_own_values(tmp_path):
    import unitb

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = unitb.TFLogger(str(tmp_path / "tf"), start_step=0, scalar_interval=1, log_speed=False)
        for step in range(1, 6):
            log.log_train_step(step, losses={"loss": 1.0 / step})
        _log_everything(log)
        _log_bad(log)
        log.close()
    _check(tmp_path / "tf", 5, caught)


def test_keras_callbacks_log_at_the_iteration_they_run_after(tmp_path):
    import keras
    import unitb

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.zeros((32, 1), "float32")
    def fresh_model():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return model

    model = fresh_model()
    cb = unitb.TFCallback(str(tmp_path / "keras"), scalar_interval=1, log_speed=False)

    class Mine(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            cb.log_scalar("my/batch_index", batch)  # lands at the iterations completed

        def on_epoch_end(self, epoch, logs=None):
            _log_everything(cb)

    model.fit(x, y, batch_size=8, epochs=2, callbacks=[cb, Mine()], verbose=0)
    cb.close()
    scalars = reader.scalars(cb.run_dir)
    assert scalars["my/batch_index"] == [(s, float((s - 1) % 4)) for s in range(1, 9)]
    tags = _by_tag(cb.run_dir)
    assert tags["my/figure"] == [(4, "image"), (8, "image")] and tags["my/notes"] == [(4, "text"), (8, "text")]
    layouts = [diff.layout_of(str(tmp_path / "keras"))]
    base = tmp_path / "plain"
    plain = unitb.TFCallback(str(base), scalar_interval=1, log_speed=False)
    fresh_model().fit(x, y, batch_size=8, epochs=1, callbacks=[plain], verbose=0)
    plain.close()
    layouts.append(diff.layout_of(plain.run_dir))
    report = diff.compare(layouts)
    assert report.ok, diff.format_report(layouts, report)
    assert any("the run's own" in n and "my/" in n for n in report.notes)


def test_mmengine_hook_and_visualizer_values_land_at_the_global_step(tmp_path):
    import mmengine_pose
    from mmengine.hooks import Hook

    from torch_adapter import EnhancedTensorBoardHook

    runner = mmengine_pose.build_runner(str(tmp_path / "work"), steps=8, checkpoints=False,
                                        tb_dir=str(tmp_path / "tb"))

    class Mine(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            unitb_hook = next(h for h in runner.hooks if isinstance(h, EnhancedTensorBoardHook))
            unitb_hook.log_scalar("my/iter_seen", runner.iter + 1)
            runner.visualizer.add_scalars({"my/visualizer": float(runner.iter + 1)}, step=runner.iter + 1)

    runner.register_hook(Mine(), priority="LOWEST")
    runner.train()
    scalars = reader.scalars(str(tmp_path / "tb"))
    # mmengine calls after_train_iter hooks before it advances runner.iter: step = runner.iter + 1
    assert scalars["my/iter_seen"] == [(s, float(s)) for s in range(1, 9)]
    assert scalars["my/visualizer"] == [(s, float(s)) for s in range(1, 9)]


@pytest.mark.parametrize("value", [None, "x", [1, 2]])
def test_a_bad_step_is_one_warning_and_the_current_step(tmp_path, value):
    import torch

    from torch_adapter import TorchLogger

    model = torch.nn.Linear(2, 1)
    log = TorchLogger(str(tmp_path / "r"), model, None, scalar_interval=1, log_grad_norm=False, log_speed=False)
    log.log_step(2, loss=1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.log_scalar("my/x", 1.0, step=value)
    log.close()
    assert reader.scalars(str(tmp_path / "r"))["my/x"] == [(2, 1.0)]
    assert len([w for w in caught if issubclass(w.category, UnitbWarning)]) == (0 if value is None else 1)


def test_a_value_logged_when_no_run_is_open_is_one_warning(tmp_path):
    import torch

    from torch_adapter import TorchLogger

    log = TorchLogger(str(tmp_path / "r"), torch.nn.Linear(2, 1), None, log_grad_norm=False, log_speed=False)
    log.log_step(1, loss=1.0)
    log.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.log_scalar("my/late", 1.0)
        log.log_scalar("my/later", 2.0)
    said = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning)]
    assert len(said) == 1 and "after close()" in said[0]
    assert "my/late" not in reader.scalars(str(tmp_path / "r"))


def test_pr_curves_match_tensorboards_own_and_show_in_the_tab(tmp_path):
    import torch
    from tensorboard.plugins.pr_curve import summary as pr_summary
    from tensorboard.util import tensor_util

    import unitb
    from tb_server import tensorboard
    from torch_adapter import TorchLogger

    rng = np.random.default_rng(0)
    labels = rng.random(200) > 0.5
    scores = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1).astype("float32")
    log = TorchLogger(str(tmp_path / "logs" / "torch"), torch.nn.Linear(2, 1), None, log_grad_norm=False,
                      log_speed=False, scalar_interval=1)
    log.log_step(3, loss=1.0)
    log.log_pr_curve("val/boxes_iou50", labels, scores)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.log_pr_curve("val/bad", labels, scores * 2)  # scores outside [0, 1]
    assert len([w for w in caught if issubclass(w.category, UnitbWarning)]) == 1
    log.close()
    tf_log = unitb.TFLogger(str(tmp_path / "logs" / "tf"), start_step=0, log_speed=False, scalar_interval=1)
    tf_log.log_train_step(3, losses={"loss": 1.0})
    tf_log.log_pr_curve("val/boxes_iou50", labels, scores)
    tf_log.close()
    (row,) = [r for r in reader.read_run(str(tmp_path / "logs" / "torch")) if r.tag == "val/boxes_iou50/pr_curves"]
    theirs = tensor_util.make_ndarray(pr_summary.pb("val/boxes_iou50", labels, scores).value[0].tensor)
    assert row.step == 3 and np.allclose(np.asarray(row.value), theirs)
    with tensorboard(str(tmp_path / "logs"), expect_runs=2) as tb:
        tags = tb.get("/data/plugin/pr_curves/tags")
        assert "val/boxes_iou50/pr_curves" in tags["torch"] and "val/boxes_iou50/pr_curves" in tags["tf"]
        curve = tb.get("/data/plugin/pr_curves/pr_curves", run="torch", tag="val/boxes_iou50/pr_curves")
        assert curve["torch"][0]["step"] == 3 and len(curve["torch"][0]["precision"]) >= 200


def _figure(line_to: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 1.5), dpi=50)
    axes.plot([0, 1], [0, line_to])
    axes.set_ylim(0, 1)
    return figure


def _png_of(figure) -> np.ndarray:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def test_a_figure_is_drawn_off_the_training_thread_as_it_was_given(tmp_path):
    """log_figure (close=True, the default) takes the figure out of pyplot and draws it on the
    writer thread: the image is savefig's, pixel for pixel. With close=False the caller keeps the
    figure and may change it: it is drawn at the call, so a later change does not show."""
    import matplotlib.pyplot as plt
    torch = pytest.importorskip("torch")  # noqa: F841
    from torch_adapter import TorchLogger

    logger = TorchLogger(str(tmp_path / "run"), log_speed=False, log_model_stats=False)
    handed = _figure(1.0)
    logger.log_figure("my/closed", handed, step=1)
    assert handed.number not in plt.get_fignums()  # pyplot let go of it
    kept = _figure(0.2)
    logger.log_figure("my/kept", kept, step=1, close=False)
    kept.axes[0].lines[0].set_ydata([0, 0.9])  # the caller goes on with its figure
    logger.close()
    images = {row.tag: reader.decode_png(row.value) for row in reader.iter_rows(logger.run_dir or "")
              if row.kind == "image"}
    np.testing.assert_array_equal(images["my/closed"], _png_of(_figure(1.0)))
    np.testing.assert_array_equal(images["my/kept"], _png_of(_figure(0.2)))
    plt.close("all")
