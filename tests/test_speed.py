"""Speed and memory families on every side, and an mmengine run whose TensorBoard holds the
schema only. unitb's clock is a virtual one the tests move by known amounts between steps, so
each figure is checked exactly against what it is computed from, however busy the machine is
(a real clock read at two places in a loop drifts apart under load; timings live in benchmarks/)."""
import json
import os
import types

import numpy as np
import pytest
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

import mmengine_pose
import unitb
from tb_server import tensorboard
from unitb import schema
from unitb.life import speed as speed_module
from unitb import reader

SPEED = ("train/time/step", "train/throughput", "train/memory/host_mb")


def _values(run_dir, tag):
    return {r.step: r.value for r in reader.read_run(run_dir) if r.tag == tag}


class VirtualClock:
    """unitb's clock in these tests: it stands still but when :meth:`advance` moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def iteration_seconds(index: int) -> float:
    """How long iteration ``index`` takes on the virtual clock: uneven, so averages are checked."""
    return 0.5 + 0.25 * (index % 3)


@pytest.fixture
def clock(monkeypatch):
    virtual = VirtualClock()
    monkeypatch.setattr(speed_module, "time", types.SimpleNamespace(perf_counter=virtual.perf_counter))
    return virtual


@HOOKS.register_module(force=True)
class WallClock(Hook):
    """The witness: moves the virtual clock by each iteration's length, and notes its time at the
    end of every training iteration."""

    priority = "LOWEST"
    times = {}
    clock = None

    def before_train(self, runner):
        WallClock.times = {runner.iter: WallClock.clock.perf_counter()}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        WallClock.clock.advance(iteration_seconds(runner.iter))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        WallClock.times[runner.iter + 1] = WallClock.clock.perf_counter()


@pytest.fixture(scope="module")
def mmengine_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("speed")
    with pytest.MonkeyPatch.context() as patch:
        WallClock.clock = VirtualClock()
        patch.setattr(speed_module, "time", types.SimpleNamespace(perf_counter=WallClock.clock.perf_counter))
        runner = mmengine_pose.build_runner(str(work), steps=24, checkpoints=False, val_interval=100,
                                            local_backend=True, hook=dict(scalar_interval=4, grad_norm_interval=4))
        runner.register_hook(dict(type="WallClock"))
        runner.train()
    return mmengine_pose.vis_dir(str(work)), dict(WallClock.times), runner


def test_mmengine_speed_matches_the_wall_clock(mmengine_run):
    run_dir, wall, _ = mmengine_run
    step_time = _values(run_dir, "train/time/step")
    assert sorted(step_time) == [1, 4, 8, 12, 16, 20, 24]
    for step in (8, 12, 16, 20, 24):
        witness = (wall[step] - wall[step - 4]) / 4
        assert witness == sum(iteration_seconds(i) for i in range(step - 4, step)) / 4
        assert step_time[step] == pytest.approx(witness, rel=1e-6), step
    throughput = _values(run_dir, "train/throughput")
    for step in step_time:  # full batches of 8: samples per second = batch / step time
        assert throughput[step] == pytest.approx(8 / step_time[step], rel=1e-6)
    data = _values(run_dir, "train/time/data")
    assert sorted(data) == [4, 8, 12, 16, 20, 24] and all(0 <= v < step_time[s] for s, v in data.items())
    host = _values(run_dir, "train/memory/host_mb")
    assert all(100 < v < 24 * 1024 for v in host.values())
    assert not _values(run_dir, "train/memory/device_mb")  # CPU-only: absent, no warning


def test_mmengine_tensorboard_holds_the_schema_only(mmengine_run):
    run_dir, _, runner = mmengine_run
    with tensorboard(os.path.dirname(run_dir)) as server:
        (run,) = server.get("/data/runs")
        tags = server.get("/data/plugin/scalars/tags")[run]
    outside = sorted(t for t in tags if schema.family_of(t) is None)
    assert not outside, outside
    assert {"train/loss", "train/time/step", "train/throughput", "train/time/data"} <= set(tags)
    # mmengine's own records are untouched: its scalars.json still has loss, lr, time, data_time.
    with open(os.path.join(run_dir, "scalars.json")) as handle:
        keys = set().union(*(json.loads(line) for line in handle if line.strip()))
    assert {"loss", "lr", "time", "data_time"} <= keys


def test_mmengine_raw_scalars_on_request(tmp_path):
    mmengine_pose.build_runner(str(tmp_path), steps=8, checkpoints=False,
                               hook=dict(scalar_interval=1, keep_mmengine_scalars=True)).train()
    tags = {r.tag for r in reader.read_run(mmengine_pose.vis_dir(str(tmp_path)))}
    assert {"loss", "lr", "train/loss"} <= tags


def test_keras_speed_matches_the_wall_clock(tmp_path, clock):
    import keras

    x = np.random.default_rng(0).normal(size=(480, 64)).astype("float32")
    y = x[:, :4]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")
    begins = {}

    class Witness(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            begins[len(begins)] = clock.perf_counter()  # iterations completed so far -> time

        def on_train_batch_end(self, batch, logs=None):
            clock.advance(iteration_seconds(batch))

    # The witness runs after unitb's batch-begin, where unitb reads the clock for the block just done.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False,
              callbacks=[unitb.TFCallback(str(tmp_path), scalar_interval=10), Witness()])
    step_time = _values(str(tmp_path), "train/time/step")
    assert sorted(step_time) == [1, 10, 20, 30]
    witness = (begins[20] - begins[10]) / 10
    assert step_time[20] == pytest.approx(witness, rel=1e-6)
    assert step_time[20] == pytest.approx(sum(iteration_seconds(i) for i in range(10, 20)) / 10, rel=1e-6)
    throughput = _values(str(tmp_path), "train/throughput")
    for step in (10, 20):
        assert throughput[step] == pytest.approx(16 / step_time[step], rel=1e-6)
    assert set(SPEED) <= {r.tag for r in reader.read_run(str(tmp_path))}
    assert not _values(str(tmp_path), "train/time/data")  # Keras runs the input pipeline inside its train step


def test_tf_loop_and_torch_logger_speed(tmp_path, clock):

    torch_log = unitb.TorchLogger(str(tmp_path / "torch"), scalar_interval=5)
    tf_log = unitb.TFLogger(str(tmp_path / "tf"), scalar_interval=5)
    wall = {0: clock.perf_counter()}
    for step in range(1, 16):
        clock.advance(iteration_seconds(step))
        torch_log.log_step(step, loss=1.0, batch_size=4, data_time=0.005)
        tf_log.log_train_step(step, losses={"total": 1.0}, batch_size=4, data_time=0.005)
        wall[step] = clock.perf_counter()
    torch_log.close()
    tf_log.close()
    for run_dir in (str(tmp_path / "torch"), str(tmp_path / "tf")):
        step_time = _values(run_dir, "train/time/step")
        # Step 1's figure covers the time since the logger began measuring (here none at all,
        # where a logger starts at its first step): the blocks after it are what is checked.
        assert {5, 10, 15} <= set(step_time) <= {1, 5, 10, 15}
        assert step_time[10] == pytest.approx((wall[10] - wall[5]) / 5, rel=1e-6)
        assert _values(run_dir, "train/throughput")[10] == pytest.approx(4 / step_time[10], rel=1e-6)
        assert _values(run_dir, "train/time/data")[10] == pytest.approx(0.005)
