"""TorchLogger in a plain PyTorch loop: same tags and code paths as the hook."""
import math

import numpy as np
import pytest
import torch

from torch_adapter import TorchLogger
from unitb import reader
from unitb.write import render


def _steps(rows, tag):
    return [r.step for r in rows if r.tag == tag]


def _values(rows, tag):
    return {r.step: r.value for r in rows if r.tag == tag}


def _train(logdir, steps, start_step=0, **kwargs):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    witness = {}

    def record(opt, args, kw):
        witness[len(witness) + 1 + start_step] = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    optimizer.register_step_pre_hook(record)
    x = torch.randn(16, 4)
    y = x.sum(1, keepdim=True)
    logger = TorchLogger(logdir, model=model, optimizer=optimizer, start_step=start_step, grad_norm_interval=2,
                         scalar_interval=1, max_layers_to_log=2, **kwargs)
    for step in range(start_step + 1, steps + 1):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)  # gradients gone before log_step, as in mmengine
        logger.log_step(step, loss=loss, losses={"loss_mse": loss}, epoch=step / 4)
        scheduler.step()
        if step % 4 == 0:
            logger.log_epoch(step, step // 4)
    logger.log_val(steps, {"accuracy": 0.75, "bad": "text", "nested": {"a": 1}})
    logger.log_images("val", steps, torch.rand(2, 3, 16, 16), gt_keypoints=[np.array([[4.0, 4.0]])] * 2)
    logger.close()
    return witness


def test_plain_loop_tags_steps_and_values(tmp_path):
    with pytest.warns(UserWarning, match="not a number"):
        witness = _train(str(tmp_path), 8)
    rows = reader.read_run(str(tmp_path))
    assert _steps(rows, "train/loss") == list(range(1, 9))
    assert _steps(rows, "train/loss/mse") == list(range(1, 9))
    assert _steps(rows, "train/gradient_norm/global") == [1, 2, 4, 6, 8]
    for step, value in _values(rows, "train/gradient_norm/global").items():
        assert value == pytest.approx(witness[step], rel=1e-5)
    lr = _values(rows, "train/learning_rate/0")
    assert lr[1] == pytest.approx(0.1) and lr[4] == pytest.approx(0.05) and lr[7] == pytest.approx(0.025)
    assert _steps(rows, "weights/0.weight") == [4, 8]
    assert _values(rows, "val/accuracy") == {8: 0.75}
    assert not [r for r in rows if r.tag in ("val/bad", "val/nested")]
    picture = reader.decode_png([r for r in rows if r.tag == "val/image"][0].value)
    at = round((4 + 0.5) * 8 - 0.5)  # 16-pixel images are drawn 8x larger (render.MIN_SIDE = 128)
    assert tuple(picture[2 + at, 2 + at]) == render.GT_COLOR


def test_resume_with_start_step_drops_orphans(tmp_path):
    _train(str(tmp_path), 8)
    _train(str(tmp_path), 10, start_step=5)  # restarted from a checkpoint at step 5
    rows = reader.read_run(str(tmp_path))
    assert _steps(rows, "train/loss") == list(range(1, 11))
    assert _steps(rows, "model/total_parameters") == [0, 10]  # the first run's point at 10 was an orphan


def test_nonfinite_loss_is_an_anomaly_not_a_crash(tmp_path):
    model = torch.nn.Linear(2, 1)
    logger = TorchLogger(str(tmp_path), model=model, scalar_interval=1)
    with pytest.warns(UserWarning, match="non-finite loss at step 3"):
        logger.log_step(3, loss=torch.tensor(float("nan")))
    logger.log_step(4, loss=torch.tensor(float("inf")))
    logger.close()
    rows = reader.read_run(str(tmp_path))
    assert _values(rows, "train/anomaly/loss") == {3: 1.0, 4: 1.0}
    assert _steps(rows, "train/loss") == []
    strict = TorchLogger(str(tmp_path / "strict"), model=model, scalar_interval=1, raise_on_nonfinite=True)
    with pytest.raises(FloatingPointError):
        strict.log_step(1, loss=float("nan"))


def test_gradient_histograms_are_opt_in(tmp_path):
    _train(str(tmp_path / "off"), 4)
    _train(str(tmp_path / "on"), 4, log_grad_hist=True)
    off = reader.read_run(str(tmp_path / "off"))
    on = reader.read_run(str(tmp_path / "on"))
    assert not [r for r in off if r.tag.startswith("gradients/")]
    hist = sorted({r.tag for r in on if r.tag.startswith("gradients/")})
    assert hist == ["gradients/0.weight", "gradients/2.bias"]  # the same two layers as the norms
    assert _steps(on, "gradients/0.weight") == [1, 2, 4]
    assert all(r.kind == "histogram" for r in on if r.tag.startswith("gradients/"))
