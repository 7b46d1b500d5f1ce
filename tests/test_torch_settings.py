"""The PyTorch side under the settings users turn on: torch.compile, torch.amp.GradScaler,
mmengine gradient accumulation and an AMP optimizer wrapper. Event files read back."""
import math

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

import mmengine_pose
import unitb
from unitb import reader


def _values(run_dir, tag):
    return {r.step: r.value for r in reader.read_run(run_dir) if r.tag == tag}


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))


def _batch(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)


def _norm(grads):
    return math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads))


def _layer_tags(run_dir, family):
    return sorted({r.tag for r in reader.read_run(run_dir) if r.tag.startswith(family)})


def test_torch_compile_keeps_the_layer_names_of_the_uncompiled_model(tmp_path, no_unitb_warnings):
    def train(model, logdir):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        with unitb.TorchLogger(logdir, model=model, optimizer=opt, grad_norm_interval=1, scalar_interval=1) as log:
            for step in range(1, 4):
                x, y = _batch(step)
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                log.log_step(step, loss=loss.item())
                log.log_epoch(step, step)

    plain, compiled = str(tmp_path / "plain"), str(tmp_path / "compiled")
    train(_net(), plain)
    train(torch.compile(_net()), compiled)
    for family in ("train/gradient_norm/layers/", "weights/"):
        assert _layer_tags(compiled, family) == _layer_tags(plain, family) != []
        assert not [t for t in _layer_tags(compiled, family) if "_orig_mod" in t]
    a, b = _values(plain, "train/gradient_norm/global"), _values(compiled, "train/gradient_norm/global")
    assert sorted(a) == [1, 2, 3] and all(b[s] == pytest.approx(a[s], rel=1e-4) for s in a)


def test_a_submodule_compiled_on_its_own(tmp_path):
    model = _net()
    model[0] = torch.compile(model[0])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with unitb.TorchLogger(str(tmp_path), model=model, optimizer=opt, grad_norm_interval=1) as log:
        x, y = _batch(1)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        log.log_step(1, loss=1.0)
    assert "train/gradient_norm/layers/0.weight" in _layer_tags(str(tmp_path), "train/gradient_norm/layers/")


def test_grad_scaler_logs_unscaled_norms_the_scale_and_skips_quietly(tmp_path, no_unitb_warnings):
    model, twin = _net(), _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu")
    state = {"step": 0}
    # Step 2's gradients overflow: the scaler skips that update and halves its scale.
    model[2].weight.register_hook(lambda g: g * float("inf") if state["step"] == 2 else g)
    witness = {}
    with unitb.TorchLogger(str(tmp_path), model=model, optimizer=opt, grad_scaler=scaler,
                           grad_norm_interval=1, scalar_interval=1) as log:
        for step in range(1, 6):
            state["step"] = step
            x, y = _batch(step)
            twin.load_state_dict(model.state_dict())  # the unscaled witness at the same weights
            torch.nn.functional.mse_loss(twin(x), y).backward()
            witness[step] = _norm([p.grad for p in twin.parameters()])
            twin.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
                loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            log.log_step(step, loss=loss.item())
    norms = _values(str(tmp_path), "train/gradient_norm/global")
    assert sorted(norms) == [1, 3, 4, 5]  # step 2's update was skipped: no norm, no anomaly, no warning
    for step in (1, 3, 4, 5):
        assert norms[step] == pytest.approx(witness[step], rel=1e-5)  # unscaled, not 65536x
    scale = _values(str(tmp_path), "train/loss_scale")
    assert scale[1] == 65536.0 and scale[2] == 32768.0
    assert not [r for r in reader.read_run(str(tmp_path)) if r.tag.startswith("train/anomaly")]


def test_mmengine_accumulative_counts_logs_applied_updates_on_the_iteration_axis(tmp_path, no_unitb_warnings):
    from test_torch_hook import GradRecorder  # noqa: F401  (registers the witness hook)

    runner = mmengine_pose.build_runner(str(tmp_path), steps=8, checkpoints=False,
                                        hook=dict(grad_norm_interval=1, scalar_interval=1))
    runner.optim_wrapper["accumulative_counts"] = 2  # still the config: built in train()
    runner.register_hook(dict(type="GradRecorder"))
    runner.train()
    run_dir = mmengine_pose.vis_dir(str(tmp_path))
    assert sorted(_values(run_dir, "train/loss")) == list(range(1, 9))  # iterations = micro-batches
    norms = _values(run_dir, "train/gradient_norm/global")
    assert sorted(norms) == [2, 4, 6, 8]  # the iterations that applied an update
    for step, value in norms.items():
        assert value == pytest.approx(GradRecorder.records[step][0], rel=1e-5)


@OPTIM_WRAPPERS.register_module(force=True)
class CpuAmpOptimWrapper(OptimWrapper):
    """What mmengine's AmpOptimWrapper does (scale the loss, unscale, step and update through
    ``self.loss_scaler``), on the CPU: mmengine's own class refuses to build without CUDA."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_scaler = torch.amp.GradScaler("cpu")

    def backward(self, loss, **kwargs):
        self.loss_scaler.scale(loss).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        self.loss_scaler.unscale_(self.optimizer)
        self.loss_scaler.step(self.optimizer, **kwargs)
        self.loss_scaler.update()


def test_mmengine_amp_wrapper_path_logs_unscaled_norms_and_loss_scale(tmp_path):
    runs = {}
    for name, wrapper in (("plain", "OptimWrapper"), ("amp", "CpuAmpOptimWrapper")):
        runner = mmengine_pose.build_runner(str(tmp_path / name), steps=4, checkpoints=False,
                                            hook=dict(grad_norm_interval=1, scalar_interval=1))
        runner.optim_wrapper["type"] = wrapper  # still the config: built in train()
        runner.train()
        runs[name] = mmengine_pose.vis_dir(str(tmp_path / name))
    plain = _values(runs["plain"], "train/gradient_norm/global")
    amp = _values(runs["amp"], "train/gradient_norm/global")
    assert amp[1] == pytest.approx(plain[1], rel=1e-4)  # unscaled: equal to the run without scaling
    assert _values(runs["amp"], "train/loss_scale")[1] == 65536.0
    assert not _values(runs["plain"], "train/loss_scale")

