"""profile_steps=(start, stop) on every entry point: a profiler trace of exactly those training
steps in the run folder (torch: Chrome trace JSON; TensorFlow: plugins/profile for TensorBoard's
PROFILE tab); outside the window nothing happens."""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

from unitb.life.profiling import ProfileWindow, StepProfiler


def test_the_window_starts_and_stops_once_at_its_steps():
    calls = []
    profiler = StepProfiler((3, 4), lambda: calls.append("begin"), lambda label: calls.append(label),
                            lambda *a: calls.append("warn"))
    for step in range(1, 8):
        profiler.before_step(step)
        calls.append(step)
        profiler.after_step(step)
    assert calls == [1, 2, "begin", 3, 4, "steps-3-4", 5, 6, 7]
    blocks = StepProfiler((5, 6), lambda: calls.append("B"), lambda label: calls.append("E"), None)
    blocks.before_block(1, 4)
    assert not blocks.window.active
    blocks.before_block(5, 8)  # a Keras block holding the window: the whole block is traced
    assert blocks.window.active
    blocks.after_step(8)
    assert blocks.window.done and calls[-2:] == ["B", "E"]
    assert ProfileWindow(None).done


@pytest.mark.parametrize("bad", [(0, 2), (3, 2), (1, 2, 3), "x", True, 1.5])
def test_bad_windows_are_refused_at_construction(bad, tmp_path):
    import unitb

    with pytest.raises(ValueError, match="profile_steps"):
        unitb.TFCallback(str(tmp_path), profile_steps=bad)


def _optimizer_steps(trace_path):
    events = json.load(open(trace_path))["traceEvents"]
    return len([e for e in events if str(e.get("name", "")).startswith("Optimizer.step#SGD.step")])


def test_torch_logger_traces_exactly_the_window(tmp_path):
    import torch

    from torch_adapter import TorchLogger

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    log = TorchLogger(str(tmp_path / "run"), model, optimizer, profile_steps=(2, 3), log_speed=False)
    for step in range(1, 6):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log.log_step(step, loss=loss)
    log.close()
    (trace,) = glob.glob(str(tmp_path / "run" / "profile" / "steps-2-3.*.pt.trace.json"))
    assert _optimizer_steps(trace) == 2  # steps 2 and 3, nothing else


def test_mmengine_hook_traces_exactly_the_window(tmp_path):
    import mmengine_pose

    runner = mmengine_pose.build_runner(str(tmp_path / "work"), steps=6, checkpoints=False,
                                        tb_dir=str(tmp_path / "tb"), hook=dict(profile_steps=(3, 4)))
    runner.train()
    (trace,) = glob.glob(str(tmp_path / "tb" / "profile" / "steps-3-4.*.pt.trace.json"))
    assert _optimizer_steps(trace) == 2


def _xplanes(folder):
    return glob.glob(os.path.join(str(folder), "plugins", "profile", "*", "*.xplane.pb"))


@pytest.mark.parametrize("keyword", ["profile_steps", "profile_batch"])
def test_keras_fit_writes_a_profile_for_tensorboard(tmp_path, keyword):
    import keras
    import unitb

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    cb = unitb.TFCallback(str(tmp_path / "run"), log_speed=False, **{keyword: (2, 3)})
    model.fit(np.zeros((48, 4), "float32"), np.zeros((48, 2), "float32"), batch_size=8, epochs=1, callbacks=[cb],
              verbose=0)
    cb.close()
    assert len(_xplanes(tmp_path / "run")) == 1


def test_tf_logger_writes_a_profile(tmp_path):
    import tensorflow as tf

    import unitb

    log = unitb.TFLogger(str(tmp_path / "run"), start_step=0, profile_steps=(1, 2), log_speed=False)
    w = tf.Variable(1.0)
    for step in range(1, 5):
        w.assign_add(1.0)
        log.log_train_step(step, losses={"loss": w})
    log.close()
    assert len(_xplanes(tmp_path / "run")) == 1
