"""EnhancedTensorBoardHook inside a real mmengine Runner; event files read back."""
import math
import os

import numpy as np
import pytest
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

import mmengine_pose
from synthetic import keypoint_images
from unitb import reader
from unitb.write import render


@HOOKS.register_module(force=True)
class GradRecorder(Hook):
    """Independent witness: records, inside optimizer.step, the norm of the gradients the
    optimizer applies (plain per-parameter loop) and the LR it uses."""

    priority = "VERY_HIGH"
    records = {}

    def before_train(self, runner):
        GradRecorder.records = {}
        self.step = 0
        optimizer = runner.optim_wrapper.optimizer

        def witness(opt, args, kwargs):
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            total = math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads))
            GradRecorder.records[self.step] = (total, opt.param_groups[0]["lr"])
        optimizer.register_step_pre_hook(witness)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.step = runner.iter + 1


HOOK = dict(grad_norm_interval=4, scalar_interval=2, train_image_interval=8, val_image_interval=1,
            max_layers_to_log=3, kpt_thr=0.0)


def _train(work_dir, **kwargs):
    runner = mmengine_pose.build_runner(str(work_dir), **kwargs)
    runner.register_hook(dict(type="GradRecorder"))
    runner.train()
    return runner


@pytest.fixture(scope="module")
def epoch_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("epoch")
    runner = _train(work, steps=16, hook=HOOK)
    run_dir = mmengine_pose.vis_dir(str(work))
    return runner, run_dir, reader.read_run(run_dir), dict(GradRecorder.records)


def _steps(rows, tag):
    return [r.step for r in rows if r.tag == tag]


def _values(rows, tag):
    return {r.step: r.value for r in rows if r.tag == tag}


def test_tags_and_steps_epoch_based(epoch_run):
    _runner, run_dir, rows, _ = epoch_run
    assert len(reader.event_files(run_dir)) == 1  # one event file, shared with LoggerHook
    tags = {r.tag for r in rows}
    assert not {"loss", "lr", "time", "data_time"} & tags  # mmengine's LoggerHook scalars stay out
    assert _steps(rows, "train/loss") == [1, 2, 4, 6, 8, 10, 12, 14, 16]
    assert _steps(rows, "train/loss/kpt") == [1, 2, 4, 6, 8, 10, 12, 14, 16]
    assert _steps(rows, "train/acc_pose") == [1, 2, 4, 6, 8, 10, 12, 14, 16]
    assert _steps(rows, "train/learning_rate/0") == [1, 2, 4, 6, 8, 10, 12, 14, 16]
    assert _steps(rows, "train/gradient_norm/global") == [1, 4, 8, 12, 16]
    layer_tags = sorted(t for t in tags if t.startswith("train/gradient_norm/layers/"))
    assert layer_tags == ["train/gradient_norm/layers/backbone.0.weight",
                          "train/gradient_norm/layers/backbone.4.weight", "train/gradient_norm/layers/head.bias"]
    for tag in layer_tags:
        assert _steps(rows, tag) == [1, 4, 8, 12, 16]
    assert _values(rows, "train/epoch") == {1: 0.125, 2: 0.25, 4: 0.5, 6: 0.75, 8: 1.0, 10: 1.25, 12: 1.5,
                                            14: 1.75, 16: 2.0}
    assert _steps(rows, "val/PCK") == [8, 16] and _steps(rows, "val/EPE") == [8, 16]
    assert sorted(t for t in tags if t.startswith("weights/")) == [
        "weights/backbone.0.weight", "weights/backbone.4.weight", "weights/head.bias"]
    assert _steps(rows, "weights/head.bias") == [8, 16]
    assert _steps(rows, "train/image") == [1, 8, 16]
    assert _steps(rows, "val/image") == [8, 16]
    assert {"config", "custom_scalars__config__", "_hparams_/session_start_info"} <= tags


def test_model_statistics_at_step_zero(epoch_run):
    runner, _, rows, _ = epoch_run
    model = runner.model
    total = sum(p.numel() for p in model.parameters())
    assert _values(rows, "model/total_parameters") == {0: total, 16: total}  # at the start and the last step
    assert _values(rows, "model/trainable_parameters") == {0: total, 16: total}
    size = (sum(p.numel() * 4 for p in model.parameters()) + sum(b.numel() * b.element_size() for b in model.buffers()))
    assert _values(rows, "model/model_size_mb")[0] == pytest.approx(size / 2 ** 20, rel=1e-6)


def test_gradient_norm_is_the_norm_of_the_applied_gradients(epoch_run):
    _, _, rows, witness = epoch_run
    logged = _values(rows, "train/gradient_norm/global")
    assert set(logged) <= set(witness)
    for step, value in logged.items():
        assert value == pytest.approx(witness[step][0], rel=1e-5), step
        assert value > 0


def test_learning_rate_follows_the_real_scheduler(epoch_run):
    _, _, rows, witness = epoch_run
    logged = _values(rows, "train/learning_rate/0")
    for step, value in logged.items():
        assert value == pytest.approx(witness[step][1], rel=1e-6), step
    assert logged[1] == pytest.approx(0.05 * 0.2)  # LinearLR warm-up starts at start_factor
    assert len({round(v, 8) for v in logged.values()}) > 3  # it moves


def test_images_have_overlays_where_the_keypoints_are(epoch_run):
    _, _, rows, _ = epoch_run
    image_row = [r for r in rows if r.tag == "val/image"][0]
    picture = reader.decode_png(image_row.value)
    images, kpts = keypoint_images(16, seed=1)  # the val loader does not shuffle
    factor = 4  # 32-pixel images are drawn at 128 (render.MIN_SIDE)
    pad, cell = 2, 32 * factor + 2
    at = lambda v: int(round((v + 0.5) * factor - 0.5))
    hits = 0
    for index in range(4):
        row, col = divmod(index, 2)
        for x, y in kpts[index]:
            py, px = pad + row * cell + at(y), pad + col * cell + at(x)
            pixel = tuple(picture[py, px])
            raw = tuple(images[index][int(round(y)), int(round(x))])
            hits += pixel in (render.GT_COLOR, render.PRED_COLOR) and pixel != raw
    assert hits >= 18  # of 20 keypoints (a red prediction may sit right next to a GT dot)
    assert (picture == np.array(render.PRED_COLOR)).all(axis=-1).sum() > 0
    train = reader.decode_png([r for r in rows if r.tag == "train/image"][0].value)
    assert (train == np.array(render.GT_COLOR)).all(axis=-1).sum() > 0
    assert train.shape == (2 * cell + pad, 2 * cell + pad, 3)  # max_train_images=4 -> 2 x 2


def test_iter_based_loop(tmp_path):
    _train(tmp_path, steps=12, by_epoch=False, val_interval=6, hook=HOOK)
    rows = reader.read_run(mmengine_pose.vis_dir(str(tmp_path)))
    assert _steps(rows, "train/loss") == [1, 2, 4, 6, 8, 10, 12]
    assert _steps(rows, "train/gradient_norm/global") == [1, 4, 8, 12]
    assert _steps(rows, "val/PCK") == [6, 12]
    assert _steps(rows, "weights/head.bias") == [8]  # 8 iterations make one pass over the data
    assert _values(rows, "train/epoch")[8] == 1.0


def test_clip_grad_logs_applied_and_pre_clip_norms(tmp_path):
    _train(tmp_path, steps=8, hook=HOOK, clip_grad=dict(max_norm=0.05))
    rows = reader.read_run(mmengine_pose.vis_dir(str(tmp_path)))
    applied = _values(rows, "train/gradient_norm/global")
    pre = _values(rows, "train/gradient_norm/pre_clip")
    assert sorted(applied) == sorted(pre) == [1, 4, 8]
    for step in applied:
        assert applied[step] == pytest.approx(min(pre[step], 0.05), rel=1e-4)
        assert applied[step] == pytest.approx(GradRecorder.records[step][0], rel=1e-5)


def test_without_tensorboard_backend_it_warns_once_and_still_writes(tmp_path, caplog):
    from mmengine.logging import MMLogger

    runner = mmengine_pose.build_runner(str(tmp_path), steps=4, hook=HOOK, tensorboard_backend=False)
    messages = []
    logger = MMLogger.get_current_instance()
    handler = type("H", (__import__("logging").Handler,), {"emit": lambda self, r: messages.append(r.getMessage())})()
    logger.addHandler(handler)
    try:
        runner.train()
    finally:
        logger.removeHandler(handler)
    assert sum("no TensorboardVisBackend" in m for m in messages) == 1
    run_dir = os.path.join(runner.log_dir, "vis_data")
    assert _steps(reader.read_run(run_dir), "train/loss") == [1, 2, 4, 6, 8]


def test_resume_continues_the_step_axis_without_duplicates(tmp_path):
    tb_dir = str(tmp_path / "tb")
    _train(tmp_path / "work", steps=16, hook=HOOK, tb_dir=tb_dir)
    rows = reader.read_run(tb_dir)
    assert _steps(rows, "train/loss")[-1] == 16
    # Resume from the epoch-1 checkpoint, as after a crash in epoch 2: steps 9..16 again.
    ckpts = sorted(f for f in os.listdir(tmp_path / "work") if f.endswith(".pth"))
    assert ckpts == ["epoch_2.pth"]  # max_keep_ckpts=1
    runner = mmengine_pose.build_runner(str(tmp_path / "work"), steps=24, hook=HOOK, tb_dir=tb_dir,
                                        resume=True)
    runner.train()
    rows = reader.read_run(tb_dir)
    steps = _steps(rows, "train/loss")
    assert steps == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24], steps
    assert _steps(rows, "val/PCK") == [8, 16, 24]
    # the header once (not again on resume); each segment's last step
    assert _steps(rows, "model/total_parameters") == [0, 16, 24]


def test_resume_from_earlier_checkpoint_drops_orphaned_steps(tmp_path):
    tb_dir = str(tmp_path / "tb")
    work = tmp_path / "work"
    _train(work, steps=8, hook=HOOK, tb_dir=tb_dir)  # checkpoint at step 8 (epoch 1)
    import shutil
    shutil.copy(work / "epoch_1.pth", tmp_path / "epoch_1.pth")
    _train(work, steps=16, hook=HOOK, tb_dir=tb_dir, resume=True)  # runs to 16
    # The run "crashed" after 16 and restarts from the epoch-1 checkpoint: 9..16 are orphans.
    runner = mmengine_pose.build_runner(str(work), steps=16, hook=HOOK, tb_dir=tb_dir,
                                        load_from=str(tmp_path / "epoch_1.pth"), resume=True)
    runner.train()
    rows = reader.read_run(tb_dir)
    assert _steps(rows, "train/loss") == [1, 2, 4, 6, 8, 10, 12, 14, 16], (os.listdir(tb_dir), [(r.tag, r.step, r.file[-30:]) for r in rows][:40])
    assert _steps(rows, "train/gradient_norm/global") == [1, 4, 8, 12, 16]


def test_unknown_and_bad_arguments_fail_at_construction(tmp_path):
    with pytest.raises(Exception, match="did you mean 'grad_norm_interval'"):
        mmengine_pose.build_runner(str(tmp_path), steps=4, hook=dict(grad_norm_intervl=5))
    with pytest.raises(Exception, match="kpt_thr"):
        mmengine_pose.build_runner(str(tmp_path), steps=4, hook=dict(kpt_thr=2))
    with pytest.raises(Exception, match="grad_norm_interval"):
        mmengine_pose.build_runner(str(tmp_path), steps=4, hook=dict(grad_norm_interval=0))


def test_only_max_train_images_of_the_first_batch_are_kept_on_the_cpu(tmp_path):
    runner = _train(tmp_path, steps=2, batch_size=32, hook=dict(HOOK, max_train_images=4))
    hook = next(h for h in runner.hooks if type(h).__name__ == "EnhancedTensorBoardHook")
    kept = hook.images.first_batch["inputs"]
    assert kept.shape == (4, 3, 32, 32) and kept.device.type == "cpu"
    assert len(hook.images.first_batch["data_samples"]) == 4
    assert kept.element_size() * kept.nelement() == 4 * 3 * 32 * 32  # bytes kept, vs 32 images in the batch


def test_validation_metrics_fall_back_to_the_message_hub(tmp_path):
    runner = _train(tmp_path, steps=8, hook=HOOK)  # mmengine's message hub is global: read it right away
    from torch_adapter import mmengine_runner

    metrics = mmengine_runner.hub_metrics(runner)
    assert set(metrics) >= {"PCK", "EPE"}
    logged = _values(reader.read_run(mmengine_pose.vis_dir(str(tmp_path))), "val/PCK")
    assert metrics["PCK"] == pytest.approx(logged[8])


def test_log_graph_writes_the_model_graph(tmp_path):
    _train(tmp_path, steps=2, hook=dict(HOOK, log_graph=True))
    rows = reader.read_run(mmengine_pose.vis_dir(str(tmp_path)))
    assert [r.kind for r in rows if r.kind == "graph"] == ["graph"]


def test_the_mmengine_internals_unitb_relies_on_are_there(tmp_path):
    """unitb reaches into TensorboardVisBackend in one module (torch_adapter/mmengine_internals.py).
    If an mmengine release renames what it uses, this fails here, loudly, not in a user's run."""
    import mmengine
    from mmengine.visualization import TensorboardVisBackend

    from torch_adapter import mmengine_internals

    backend = TensorboardVisBackend(str(tmp_path / "vis"))
    writer = backend.experiment  # opens the SummaryWriter (public API)
    assert mmengine_internals.missing_internals(backend) == [], (
        f"mmengine {mmengine.__version__} changed TensorboardVisBackend's internals; unitb was checked against "
        f"{mmengine_internals.CHECKED_VERSIONS}: update torch_adapter/mmengine_internals.py")
    assert mmengine_internals.writes_through(backend, writer)
    mmengine_internals.schema_only(backend)
    backend.add_scalars({"loss": 1.0}, step=1, file_path="scalars.json")  # LoggerHook's call: dropped
    backend.add_scalars({"mine": 2.0}, step=1)  # a user's call: kept
    backend.close()
    from unitb import reader

    assert set(reader.scalars(str(tmp_path / "vis"))) == {"mine"}
