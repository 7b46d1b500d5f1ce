"""The hook inside a genuine mmpose top-down run (needs the mmpose install of examples/mmpose;
skipped where mmpose is not installed)."""
import os
import sys

import numpy as np
import pytest

pytest.importorskip("mmpose")
pytest.importorskip("xtcocotools")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples", "mmpose"))

from unitb import reader
from unitb.write import render  # noqa: E402


def test_real_mmpose_topdown_run(tmp_path):
    import train

    runner = train.build_runner(str(tmp_path), max_epochs=2, kpt_thr=0.0)  # draw every prediction
    witness = {}

    from mmengine.hooks import Hook

    class Witness(Hook):
        def before_train(self, runner):
            runner.optim_wrapper.optimizer.register_step_pre_hook(lambda opt, a, k: witness.__setitem__(
                len(witness) + 1, float(np.sqrt(sum(float(p.grad.double().norm()) ** 2 for g in opt.param_groups
                                                     for p in g["params"] if p.grad is not None)))))
    runner.register_hook(Witness(), priority="VERY_HIGH")
    runner.train()
    rows = reader.read_run(str(tmp_path / "mmpose-topdown"))
    steps = lambda tag: [r.step for r in rows if r.tag == tag]
    # 32 training images, batch 8: 4 optimizer steps an epoch; validation after each epoch
    assert steps("val/coco/AP") == [4, 8] and steps("val/PCK") == [4, 8]
    assert steps("train/loss") == list(range(1, 9)) and steps("train/loss/kpt") == list(range(1, 9))
    assert steps("train/gradient_norm/global") == [1, 2, 4, 6, 8]
    assert steps("val/image") == [4, 8] and steps("train/image") == [1, 4, 8]
    # GT keypoints are drawn where they are in the 64x64 input crop
    picture = reader.decode_png([r for r in rows if r.tag == "val/image"][-1].value)
    green = (picture == np.array(render.GT_COLOR)).all(axis=-1)
    assert green.sum() > 50
    rows_hit = np.argwhere(green)[:, 0]
    assert rows_hit.max() - rows_hit.min() > 40
    assert (picture == np.array(render.PRED_COLOR)).all(axis=-1).sum() > 0  # predictions drawn too
    for step, value in {r.step: r.value for r in rows if r.tag == "train/gradient_norm/global"}.items():
        assert value == pytest.approx(witness[step], rel=1e-5)  # the norm of the gradients Adam applied
    # mmpose's predicted heatmaps (test_cfg output_heatmaps=True) beside the images, on the same crops,
    # and the keypoint PR curves of each validation
    assert steps("val/heatmap") == [4, 8] and steps("train/heatmap") == [1, 4, 8]
    heat = reader.decode_png([r for r in rows if r.tag == "val/heatmap"][-1].value)
    assert heat.shape == picture.shape and heat.astype(int).sum() > 0
    assert steps("val/pr/keypoints_oks50/pr_curves") == [4, 8] == steps("val/pr/keypoints_oks75/pr_curves")


def test_real_mmpose_resume_after_a_crash_continues_without_duplicates(tmp_path):
    """Killed at step 6 (epoch 2 of 4-step epochs), restarted with resume=True from the epoch-1
    checkpoint: steps 5 and 6 of the dead run are orphans and must not show twice."""
    import subprocess

    import train

    script = os.path.join(HERE, "scripts", "mmpose_crash.py")
    crashed = subprocess.run([sys.executable, script, str(tmp_path), "6"], capture_output=True, text=True,
                             timeout=300)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    run_dir = tmp_path / "mmpose-topdown"
    before = reader.read_run(str(run_dir))
    assert [r.step for r in before if r.tag == "train/loss"] == [1, 2, 3, 4, 5, 6]
    assert os.listdir(run_dir / "work_dir").count("epoch_1.pth") == 1

    train.build_runner(str(tmp_path), max_epochs=2, resume=True).train()
    rows = reader.read_run(str(run_dir))
    steps = lambda tag: [r.step for r in rows if r.tag == tag]
    assert steps("train/loss") == list(range(1, 9))
    assert steps("train/gradient_norm/global") == [1, 2, 4, 6, 8]
    assert steps("val/coco/AP") == [4, 8] and steps("val/PCK") == [4, 8]
    assert steps("model/total_parameters") == [0, 8]  # the header once, not again on resume; the last step
    resumed_loss = {r.step: r.value for r in rows if r.tag == "train/loss"}
    crashed_loss = {r.step: r.value for r in before if r.tag == "train/loss"}
    assert all(resumed_loss[s] == crashed_loss[s] for s in (1, 2, 3, 4))  # the kept steps are the originals


def test_real_mmpose_batch_32_keeps_only_max_train_images(tmp_path):
    import train

    runner = train.build_runner(str(tmp_path), max_epochs=1, batch_size=32, checkpoints=False, max_train_images=4)
    runner.train()  # 32 training images: one step of 32
    hook = next(h for h in runner.hooks if type(h).__name__ == "EnhancedTensorBoardHook")
    kept = hook.images.first_batch["inputs"]
    assert kept.shape == (4, 3, 64, 64) and kept.device.type == "cpu"
    assert len(hook.images.first_batch["data_samples"]) == 4
    # 4 of the batch's 32 crops: 49,152 bytes of uint8 pixels instead of 393,216
    assert kept.element_size() * kept.nelement() == 4 * 3 * 64 * 64
    rows = reader.read_run(str(tmp_path / "mmpose-topdown"))
    image = next(r for r in rows if r.tag == "train/image")
    assert image.value["width"] >= 2 * 64  # a grid of the 4 kept crops, not one image
