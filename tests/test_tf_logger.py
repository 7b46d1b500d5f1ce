"""unitb.TFLogger in custom loops, CheckpointManager, and crash/resume under every reader."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import unitb
from unitb import reader
from tb_server import tensorboard

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _steps(rows, tag):
    return [r.step for r in rows if r.tag == tag]


def _values(rows, tag):
    return {r.step: r.value for r in rows if r.tag == tag}


def _loop(logdir, steps, in_graph=False, **kwargs):
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"), keras.layers.Dense(1, name="b")],
                             name="m")
    optimizer = keras.optimizers.SGD(0.1)
    logger = unitb.TFLogger(logdir, model=model, grad_norm_interval=2, scalar_interval=1, max_layers_to_log=2,
                            **kwargs)
    x = tf.constant(np.random.default_rng(0).normal(size=(8, 4)), tf.float32)
    witness = {}

    @tf.function
    def step_fn(step):
        with tf.GradientTape() as tape:
            pred = model(x)
            coord = tf.reduce_mean(tf.square(pred))
            obj = tf.reduce_mean(tf.abs(pred))
            total = coord + obj
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses = {"total": total, "coord": coord, "object": obj}
        if in_graph:
            logger.log_train_step(step, losses=losses, learning_rate=optimizer.learning_rate, grads=grads,
                                  variables=model.trainable_variables)
        return losses, grads

    for step in range(1, steps + 1):
        losses, grads = step_fn(tf.constant(step, tf.int64))
        witness[step] = (float(losses["total"]), float(tf.linalg.global_norm(grads)))
        if not in_graph:
            logger.log_train_step(step, losses=losses, learning_rate=optimizer.learning_rate, grads=grads,
                                  variables=model.trainable_variables)
    logger.log_val(steps, {"loss": tf.constant(0.5), "mAP": 0.25})
    logger.close()
    return witness


@pytest.mark.parametrize("in_graph", [False, True])
def test_custom_loop_eager_and_inside_tf_function(tmp_path, in_graph):
    witness = _loop(str(tmp_path), 6, in_graph=in_graph)
    rows = reader.read_run(str(tmp_path))
    assert _steps(rows, "train/loss") == [1, 2, 3, 4, 5, 6]
    assert _steps(rows, "train/loss/coord") == [1, 2, 3, 4, 5, 6]
    assert _steps(rows, "train/loss/object") == [1, 2, 3, 4, 5, 6]
    assert _steps(rows, "train/learning_rate/0") == [1, 2, 3, 4, 5, 6]
    assert _steps(rows, "train/gradient_norm/global") == [1, 2, 4, 6]
    assert sorted({r.tag for r in rows if "layers/" in r.tag}) == [
        "train/gradient_norm/layers/a.kernel", "train/gradient_norm/layers/b.bias"]
    for step, value in _values(rows, "train/loss").items():
        assert value == pytest.approx(witness[step][0], rel=1e-6)
    for step, value in _values(rows, "train/gradient_norm/global").items():
        assert value == pytest.approx(witness[step][1], rel=1e-5)
    assert _values(rows, "val/loss") == {6: 0.5} and _values(rows, "val/mAP") == {6: 0.25}
    total = 4 * 3 + 3 + 3 + 1
    assert _values(rows, "model/total_parameters") == {0: total, 6: total}  # at the start and the last step


def test_checkpoint_manager_restores_and_saves_every_n(tmp_path):
    step = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(step=step, w=tf.Variable(1.0))
    manager = unitb.CheckpointManager(ckpt, str(tmp_path / "ck"), max_to_keep=2, save_every=3)
    assert manager.restore_or_initialize() == 0
    saved = []
    for _ in range(10):
        step.assign_add(1)
        ckpt.w.assign(float(step.numpy()))
        if manager.maybe_save():
            saved.append(int(step.numpy()))
    assert saved == [3, 6, 9]
    assert manager.latest_checkpoint.endswith("ckpt-9")
    again = unitb.CheckpointManager(tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), w=tf.Variable(0.0)),
                                    str(tmp_path / "ck"), save_every=3)
    assert again.restore_or_initialize() == 9 and float(again.checkpoint.w.numpy()) == 9.0
    with pytest.raises(ValueError, match="save_every"):
        unitb.CheckpointManager(ckpt, str(tmp_path / "x"), save_every=0)
    with pytest.raises(ValueError, match="step"):
        unitb.CheckpointManager(tf.train.Checkpoint(w=tf.Variable(1.0)), str(tmp_path / "y"))


def _yolo(out, *extra):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, "yolo_tf_loop.py"), "--out", str(out),
                           "--steps", "30", "--save-every", "10", *extra],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory):
    out = tmp_path_factory.mktemp("yolo")
    crashed = _yolo(out, "--crash-at", "25")
    assert crashed.returncode == 17, crashed.stderr[-2000:]
    run_dir = str(out / "tf-yolo-loop")
    before = reader.read_run(run_dir)
    crash_time = max(r.wall_time for r in before)
    assert _steps(before, "train/loss") == list(range(1, 26))  # steps 21..25 are orphans now
    resumed = _yolo(out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from step 20" in resumed.stdout
    return out, run_dir, before, crash_time


def test_resume_every_step_once_in_the_unitb_reader(crashed_and_resumed):
    _, run_dir, before, crash_time = crashed_and_resumed
    rows = reader.read_run(run_dir)
    for tag in ("train/loss", "train/loss/coord", "train/learning_rate/0", "train/epoch"):
        assert _steps(rows, tag) == list(range(1, 31)), tag
    assert _steps(rows, "train/gradient_norm/global") == [1, 5, 10, 15, 20, 25, 30]
    assert _steps(rows, "val/loss") == [20, 30]
    old = {r.step: r.wall_time for r in before if r.tag == "train/loss"}
    new = {r.step: r.wall_time for r in rows if r.tag == "train/loss"}
    assert all(new[s] == old[s] for s in range(1, 21))  # nothing before the restore point lost
    assert all(new[s] > crash_time for s in range(21, 31))  # the resumed values, not the orphans


def test_resume_every_step_once_in_event_accumulator(crashed_and_resumed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, _, _ = crashed_and_resumed
    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    events = acc.Tensors("train/loss")
    assert [e.step for e in events] == list(range(1, 31))


@pytest.mark.parametrize("load_fast", [True, False])
def test_resume_every_step_once_in_tensorboard(crashed_and_resumed, load_fast):
    out, _, _, _ = crashed_and_resumed
    with tensorboard(str(out), load_fast=load_fast) as server:
        assert server.scalar_steps("tf-yolo-loop", "train/loss") == list(range(1, 31))
        assert server.scalar_steps("tf-yolo-loop", "train/gradient_norm/global") == [1, 5, 10, 15, 20, 25, 30]


MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np, unitb
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"); y = x.sum(1, keepdims=True)
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    kernel, bias = [w.numpy() for w in model.weights]
    residual = x[:8] @ kernel + bias - y[:8]  # the applied gradient of step 1: MSE over the global batch
    witness = float(np.sqrt(np.sum((2 / 8 * x[:8].T @ residual) ** 2) + np.sum((2 / 8 * residual.sum(0)) ** 2)))
    cb = unitb.TFCallback(sys.argv[1], grad_norm_interval=1, scalar_interval=1)
    history = model.fit(x, y, batch_size=8, epochs=2, callbacks=[cb], verbose=0, shuffle=False)
    cb.close()
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"],
                      "witness": witness}))
""")


def test_mirrored_strategy_writes_one_event_file_with_correct_values(tmp_path):
    import json

    out = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert len(reader.event_files(str(tmp_path))) == 1
    rows = reader.read_run(str(tmp_path))
    assert _steps(rows, "train/loss") == list(range(1, 9))
    loss = _values(rows, "train/loss")
    assert loss[4] == pytest.approx(result["loss"][0], rel=1e-5)  # epoch-end logs == history
    assert loss[8] == pytest.approx(result["loss"][1], rel=1e-5)
    assert _steps(rows, "train/gradient_norm/global") == list(range(1, 9))
    assert all(np.isfinite(v) and v > 0 for v in _values(rows, "train/gradient_norm/global").values())
    # The sum over both replicas' gradients, as the optimizer applied it, not one replica's part.
    assert _values(rows, "train/gradient_norm/global")[1] == pytest.approx(result["witness"], rel=1e-4)


def test_bad_arguments_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="start_step"):
        unitb.TFLogger(str(tmp_path), start_step=-3)
    with pytest.raises(ValueError, match="train_image_interval"):
        unitb.TFLogger(str(tmp_path), train_image_interval=0)


def test_a_failing_writer_warns_once_and_training_goes_on(tmp_path):
    logger = unitb.TFLogger(str(tmp_path), scalar_interval=1, async_writes=False, log_speed=False)
    calls = []

    def broken(tag, value, step):
        calls.append(step)
        raise OSError(28, "No space left on device")
    logger.run.sink.write_scalar = broken
    with pytest.warns(unitb.UnitbWarning, match="could not write scalar .*No space left") as caught:
        for step in range(1, 6):
            logger.log_train_step(step, losses={"total": 1.0})
    assert calls == [1, 2, 3, 4, 5]  # every record was attempted again
    assert len([w for w in caught if "could not write" in str(w.message)]) == 1
    assert logger.run.failures["scalar"] == 5


def test_duplicate_layer_names_get_distinct_tags(tmp_path):
    variables = [tf.Variable(tf.ones((3,)) * i, name="w") for i in range(1, 4)]  # raw TF: same name thrice
    logger = unitb.TFLogger(str(tmp_path), grad_norm_interval=1, max_layers_to_log=4)
    with tf.GradientTape() as tape:
        loss = tf.add_n([tf.reduce_sum(v * v) for v in variables])
    grads = tape.gradient(loss, variables)
    logger.log_train_step(1, grads=grads, variables=variables)
    logger.log_weights(1, 1, variables)
    logger.close()
    rows = reader.read_run(str(tmp_path))
    assert sorted(r.tag for r in rows if "layers/" in r.tag) == [
        "train/gradient_norm/layers/w", "train/gradient_norm/layers/w_2", "train/gradient_norm/layers/w_3"]
    assert sorted(r.tag for r in rows if r.tag.startswith("weights/")) == ["weights/w", "weights/w_2", "weights/w_3"]
    norms = {r.tag: r.value for r in rows if "layers/" in r.tag}
    assert norms["train/gradient_norm/layers/w_3"] == pytest.approx(float(tf.norm(grads[2])), rel=1e-6)


def test_multi_worker_mirrored_strategy_two_workers_one_writer_correct_values_each_machine_named(tmp_path):
    """Two real worker processes on localhost (TF_CONFIG), each building TFLogger outside the
    strategy scope, as users do: only the chief writes, and the logged loss and gradient norm
    are those of the global batch."""
    import json

    from tb_server import free_port

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "mwms_loop.py")
    ports = [free_port(), free_port()]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen([sys.executable, script, str(tmp_path / "run"), str(tmp_path)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, TF_CONFIG=json.dumps(config), TF_CPP_MIN_LOG_LEVEL="2")))
    try:
        errors = [proc.communicate(timeout=240)[1] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0, 0], [e[-2000:] for e in errors]
    reports = [json.loads((tmp_path / f"report{i}.json").read_text()) for i in range(2)]
    assert [r["replicas"] for r in reports] == [2, 2]
    assert [r["enabled"] for r in reports] == [True, False]
    assert len(reader.event_files(str(tmp_path / "run"))) == 1 and not os.path.exists(str(tmp_path / "run-2"))
    rows = reader.read_run(str(tmp_path / "run"))
    loss = _values(rows, "train/loss")
    assert sorted(loss) == list(range(1, 9))
    assert all(loss[s] == pytest.approx(reports[0]["loss"][str(s)], rel=1e-6) for s in loss)
    assert _values(rows, "train/gradient_norm/global")[1] == pytest.approx(reports[0]["witness"]["1"], rel=1e-4)
    # Each worker's machine, written by the chief under its node's name; worker 1 holds 300 MB more.
    figures = {r.tag for r in rows if r.tag.startswith("system/")}
    assert figures and all(t.startswith(("system/node0/", "system/node1/")) for t in figures)
    rss = {node: [r.value for r in rows if r.tag == f"system/node{node}/memory/process_rss_mb"] for node in (0, 1)}
    assert len(rss[0]) >= 2 and len(rss[1]) >= 2
    for node in (0, 1):
        assert rss[node][-1] == pytest.approx(reports[node]["rss_mb"], rel=0.15)
    assert min(rss[1]) > max(rss[0]) + 200
