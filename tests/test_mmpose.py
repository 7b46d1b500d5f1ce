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

from unitb import reader, render  # noqa: E402


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
        assert value == pytest.approx(witness[step], rel=1e-5)  # the norm of the gradients Adam applied  # spread over the figure, not clumped in a corner
