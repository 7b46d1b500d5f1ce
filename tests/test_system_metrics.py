"""``system/*``: what the machine did, from every entry point, on the run's step axis, sampled
off the training thread; the values are checked against psutil read in this process."""
from __future__ import annotations

import time
from typing import Dict, List, Tuple

import numpy as np
import psutil
import pytest

import unitb
from unitb import reader, schema
from unitb.life.gpu_metrics import GpuReader

INTERVAL = 0.2
HOST = (schema.SYSTEM_CPU_HOST, schema.SYSTEM_CPU_PROCESS, schema.SYSTEM_MEMORY_HOST, schema.SYSTEM_MEMORY_PROCESS,
        schema.SYSTEM_NETWORK_SENT, schema.SYSTEM_NETWORK_RECEIVED)


def _torch_logger(logdir: str) -> None:
    import torch

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logger = unitb.TorchLogger(logdir, model=model, optimizer=optimizer, scalar_interval=1, system_interval=INTERVAL)
    for step in range(1, 9):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logger.log_step(step, loss=loss)
        time.sleep(0.1)
    logger.close()


def _tf_logger(logdir: str) -> None:
    import tensorflow as tf

    logger = unitb.TFLogger(logdir, scalar_interval=1, system_interval=INTERVAL)
    for step in range(1, 9):
        logger.log_train_step(step, losses={"total": tf.constant(1.0 / step)})
        time.sleep(0.1)
    logger.close()


def _keras_fit(logdir: str) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    slow = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: time.sleep(0.1))
    callback = unitb.TFCallback(logdir, scalar_interval=1, system_interval=INTERVAL)
    model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0, callbacks=[callback, slow])
    callback.close()


def _mmengine_hook(logdir: str) -> None:
    import mmengine_pose
    from mmengine.hooks import Hook

    class Slow(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            time.sleep(0.1)

    runner = mmengine_pose.build_runner(logdir + "-work", steps=8, tb_dir=logdir, checkpoints=False,
                                        hook=dict(scalar_interval=1, system_interval=INTERVAL))
    runner.register_hook(Slow())
    runner.train()


ENTRY_POINTS = {"TorchLogger": _torch_logger, "TFLogger": _tf_logger, "TFCallback": _keras_fit,
                "EnhancedTensorBoardHook": _mmengine_hook}


def _system(run_dir: str) -> Dict[str, List[Tuple[int, float, float]]]:
    out: Dict[str, List[Tuple[int, float, float]]] = {}
    for row in reader.iter_rows(run_dir):
        if row.tag.startswith("system/"):
            out.setdefault(row.tag, []).append((row.step, row.wall_time, float(row.value)))
    return out


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_writes_the_machine_on_its_step_axis(tmp_path, entry):
    logdir = str(tmp_path / "run")
    ENTRY_POINTS[entry](logdir)
    rss_now, host_now = psutil.Process().memory_info().rss / 2 ** 20, psutil.virtual_memory().used / 2 ** 20
    (run_dir,) = reader.find_runs(logdir)
    figures = _system(run_dir)
    assert set(HOST) <= set(figures), sorted(figures)
    assert all(schema.family_of(tag) == "system/*" for tag in figures)
    last_step = max(step for step, _ in reader.scalars(run_dir)["train/loss"])
    for tag, points in figures.items():
        steps = [step for step, _, _ in points]
        assert steps == sorted(set(steps)), (tag, steps)  # one point a step, in order
        assert 0 <= steps[0] and steps[-1] <= last_step, (tag, steps)
    memory = figures[schema.SYSTEM_MEMORY_PROCESS]
    # The sample as the run opened, the thread's, and the last one where training ended (CPU
    # shares and rates need 0.1 s since the sample before: a last sample right after one has none).
    assert len(memory) >= 3 and memory[0][0] == 0 and memory[-1][0] == last_step
    # The last sample was taken as training ended, a moment ago, in this process.
    assert memory[-1][2] == pytest.approx(rss_now, rel=0.15)
    assert figures[schema.SYSTEM_MEMORY_HOST][-1][2] == pytest.approx(host_now, rel=0.15)
    for _, _, value in figures[schema.SYSTEM_CPU_HOST]:
        assert 0.0 <= value <= 100.0
    for _, _, value in figures[schema.SYSTEM_CPU_PROCESS]:
        assert 0.0 <= value <= 100.0 * psutil.cpu_count()


def test_the_machine_is_sampled_while_the_training_thread_is_blocked(tmp_path):
    """The figures of a step are taken by the sampler's thread while the training thread is
    busy (here: blocked), once a step."""
    import torch

    model = torch.nn.Linear(4, 1)
    logger = unitb.TorchLogger(str(tmp_path / "run"), model=model, scalar_interval=1, system_interval=INTERVAL)
    logger.log_step(1, loss=torch.tensor(1.0))
    blocked_from = time.time()
    time.sleep(1.0)
    blocked_to = time.time()
    logger.log_step(2, loss=torch.tensor(0.5))
    logger.close()
    during = [(step, wall) for step, wall, _ in _system(logger.run_dir)[schema.SYSTEM_MEMORY_PROCESS]
              if blocked_from < wall < blocked_to]
    # At the step training stood at, once (the run's opening sample, labelled step 0, is the
    # thread's first and may fall in this second too).
    assert [step for step, _ in during if step != 0] == [1]


def test_system_interval_zero_writes_none_and_a_bad_one_is_refused(tmp_path):
    import torch

    model = torch.nn.Linear(4, 1)
    logger = unitb.TorchLogger(str(tmp_path / "run"), model=model, scalar_interval=1, system_interval=0)
    logger.log_step(1, loss=torch.tensor(1.0))
    logger.close()
    assert not _system(logger.run_dir)
    for bad in (-1, "10", float("inf"), True):
        with pytest.raises(ValueError, match="system_interval"):
            unitb.TorchLogger(str(tmp_path / "bad"), model=model, system_interval=bad)


def test_a_gpu_that_fails_mid_run_is_one_warning_and_the_host_goes_on():
    """NVML cannot run here; its failure is driven through a handle whose reads raise, as a GPU
    that fell off the bus makes them."""
    said: List[str] = []
    gpus = GpuReader(info=lambda message: None, warn=said.append)

    class FallenOff:
        def __getattr__(self, name):
            def fail(*args):
                raise RuntimeError("GPU is lost")
            return fail

    gpus._nvml, gpus._devices = FallenOff(), [(0, object())]
    assert gpus.read() == {} and gpus.read() == {}
    assert len(said) == 1 and "GPU is lost" in said[0] and "host's figures go on" in said[0]
