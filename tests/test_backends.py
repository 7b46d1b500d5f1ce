"""W&B (offline) and MLflow (a real tracking server) get the run TensorBoard gets: the same
tags, steps and values, read back from what each backend stored; each step once across a
resume; a backend that is down costs one warning and nothing else."""
import os
import re
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch

import unitb
from unitb.backends import forwarder as backends
from unitb.commands import cli
from unitb import reader, schema
from backend_stores import wandb_runs

pytest.importorskip("wandb")
pytest.importorskip("mlflow")


def _torch_run(logdir, first, last, start_step=0, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    logger = unitb.TorchLogger(logdir, model=model, optimizer=optimizer, start_step=start_step, grad_norm_interval=2,
                               scalar_interval=1, log_speed=False, **kwargs)
    for step in range(first, last + 1):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logger.log_step(step, loss=loss, metrics={"acc": step / 100})
    return logger


def _tb_scalars(run_dir):
    return {tag: [(s, float(v)) for s, v in points] for tag, points in reader.scalars(run_dir).items()}


def _wandb_seen(folder):
    """What a W&B user sees: each run file's rows, a later one rewinding to its branch point."""
    seen = {}
    for run in wandb_runs(folder):
        if run.branch_point is not None:
            cut = run.branch_point[1]
            seen = {tag: [p for p in points if p[0] <= cut] for tag, points in seen.items()}
        for tag, points in run.scalars().items():
            seen.setdefault(tag, []).extend(points)
    return {tag: sorted(points) for tag, points in seen.items() if points}


def _only_run(server, experiment):
    client = server.client()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return runs


def test_a_torch_run_reaches_wandb_and_mlflow_with_tensorboards_steps(tmp_path, wandb_offline, mlflow_server):
    logdir = str(tmp_path / "run")
    logger = _torch_run(logdir, 1, 12, hparams={"depth": 2, "tag": "a"},
                        backends={"wandb": {"project": "t1", "dir": wandb_offline},
                                  "mlflow": {"tracking_uri": mlflow_server.uri, "experiment": "t1"}})
    logger.log_image("samples/crop", np.full((8, 8, 3), 200, np.uint8), step=12)
    logger.log_histogram("samples/hist", np.arange(100.0), step=12)
    logger.log_text("notes/what", "a <b> note", step=12)
    logger.close()
    tb = _tb_scalars(logger.run_dir)
    assert tb["train/loss"][0][0] == 1 and [s for s, _ in tb["train/gradient_norm/global"]] == [1, 2, 4, 6, 8, 10, 12]
    assert {schema.SYSTEM_MEMORY_PROCESS, schema.SYSTEM_MEMORY_HOST} <= set(tb)  # the machine's figures go too

    (run,) = wandb_runs(wandb_offline)
    assert run.scalars() == tb
    assert run.kinds() == {"samples/crop": "image-file", "samples/hist": "histogram", "notes/what": "html-file"}
    assert run.config["depth"] == 2 and run.config["learning_rate"] == pytest.approx(0.05)
    # W&B's own folder says which unitb run it holds: offline-run-<time>-<run name>-<random>
    assert re.fullmatch(r"offline-run-\d{8}_\d{6}-run-[0-9a-f]{8}", os.path.basename(os.path.dirname(run.path)))

    (found,) = _only_run(mlflow_server, "t1")
    assert found.info.run_name == "run" and found.info.status == "FINISHED"
    assert mlflow_server.history(found.info.run_id) == tb
    assert found.data.params["depth"] == "2" and found.data.params["framework"] == "pytorch"
    artifacts = {a.path for a in mlflow_server.client().list_artifacts(found.info.run_id)}
    assert {"images", "text"} <= artifacts
    state = backends.read_state(logger.run_dir)
    assert state["wandb"]["id"] == run.run_id and state["mlflow"]["run_id"] == found.info.run_id
    assert state["wandb"]["sent_step"] == state["mlflow"]["sent_step"] == 12


def test_keras_fit_and_an_in_graph_tf_loop_reach_the_backends(tmp_path, wandb_offline, mlflow_server):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    callback = unitb.TFCallback(str(tmp_path / "keras"), grad_norm_interval=2, backends={"wandb": {"dir": wandb_offline}})
    model.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), callbacks=[callback], verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), callbacks=[callback], verbose=0)
    callback.close()
    (run,) = wandb_runs(wandb_offline)  # two fits, one W&B run
    keras_tb = _tb_scalars(callback.run_dir)
    assert run.scalars() == keras_tb and "val/loss" in keras_tb and [s for s, _ in keras_tb["train/loss"]] == [1, 2, 4, 6, 8]

    logger = unitb.TFLogger(str(tmp_path / "loop"), grad_norm_interval=2, scalar_interval=1,
                            backends={"mlflow": {"tracking_uri": mlflow_server.uri, "experiment": "t2"}})
    optimizer = keras.optimizers.SGD(0.1)

    @tf.function
    def step_fn(step):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        logger.log_train_step(step, losses={"total": loss, "box": loss / 2}, grads=grads,
                              variables=model.trainable_variables)  # tf.summary ops inside the graph

    for step in range(1, 7):
        step_fn(tf.constant(step, tf.int64))
    logger.close()
    loop_tb = _tb_scalars(logger.run_dir)
    assert [s for s, _ in loop_tb["train/loss/box"]] == [1, 2, 3, 4, 5, 6]
    (found,) = _only_run(mlflow_server, "t2")
    assert mlflow_server.history(found.info.run_id) == loop_tb


@pytest.mark.parametrize("checkpoint", [6, 10], ids=["orphans-sent", "nothing-to-drop"])
def test_a_resume_sends_each_step_once_per_backend(tmp_path, wandb_offline, mlflow_server, checkpoint):
    logdir = str(tmp_path / "run")
    experiment = f"resume-{checkpoint}"
    settings = {"wandb": {"project": "t3", "dir": wandb_offline}, "mlflow": {"tracking_uri": mlflow_server.uri, "experiment": experiment}}
    _torch_run(logdir, 1, 10, backends=settings).close()  # interrupted after step 10, checkpoint at `checkpoint`
    first = backends.read_state(logdir)
    resumed = _torch_run(logdir, checkpoint + 1, 14, start_step=checkpoint, seed=1, backends=settings)
    resumed.close()
    tb = _tb_scalars(logdir)
    assert [s for s, _ in tb["train/loss"]] == list(range(1, 15))

    second = backends.read_state(logdir)
    assert second["wandb"]["id"] == first["wandb"]["id"]  # the same W&B run goes on
    assert _wandb_seen(wandb_offline) == tb
    rerun = wandb_runs(wandb_offline)[1]
    if checkpoint == 6:
        assert rerun.branch_point == (first["wandb"]["id"], 6.0)  # rewound to the checkpoint
    else:
        assert rerun.branch_point is None and rerun.resume  # resume="allow": the same run goes on
    assert min(s for s, _ in rerun.scalars()["train/loss"]) == checkpoint + 1

    client = mlflow_server.client()
    if checkpoint == 6:  # MLflow cannot delete points: a new run replaces the old one
        assert second["mlflow"]["run_id"] != first["mlflow"]["run_id"]
        old = client.get_run(first["mlflow"]["run_id"])
        assert old.data.tags["unitb.replaced_by"] == second["mlflow"]["run_id"] and old.info.status == "KILLED"
        assert client.get_run(second["mlflow"]["run_id"]).data.tags["unitb.replaces"] == first["mlflow"]["run_id"]
    else:
        assert second["mlflow"]["run_id"] == first["mlflow"]["run_id"]
    assert mlflow_server.history(second["mlflow"]["run_id"]) == tb


def test_a_refused_rewind_falls_back_to_a_fork_that_gets_the_steps(tmp_path, wandb_offline):
    """A launcher that uses W&B itself keeps the crashed child's run open in its W&B service,
    so ``resume_from`` is refused ("run ID … is in use"): the fork must then really open."""
    import wandb

    logdir = str(tmp_path / "run")
    settings = {"wandb": {"project": "t-fork", "dir": wandb_offline}}
    _torch_run(logdir, 1, 10, backends=settings).close()
    old = backends.read_state(logdir)["wandb"]["id"]
    held = wandb.init(id=old, resume="allow", project="t-fork", dir=wandb_offline, reinit="create_new",
                      settings=wandb.Settings(console="off", silent=True))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _torch_run(logdir, 7, 14, start_step=6, seed=1, backends=settings).close()
    finally:
        held.finish()
    said = [str(w.message) for w in caught]
    assert any(f"W&B refused resume_from={old}?_step=6" in m for m in said), said
    assert not any("fork_from=" in m or "mutually exclusive" in m for m in said), said
    forked = [run for run in wandb_runs(wandb_offline) if run.branch_point == (old, 6.0)]
    assert len(forked) == 1
    tb = _tb_scalars(logdir)
    assert forked[0].scalars()["train/loss"] == [p for p in tb["train/loss"] if p[0] > 6]
    assert backends.read_state(logdir)["wandb"]["id"] == forked[0].run_id


def test_a_hard_kill_before_wandb_wrote_its_rows_resends_them_on_resume(tmp_path, wandb_offline):
    """``run.log`` returning is not W&B holding the row: a process SIGKILLed right after its
    forwarder handed steps over can leave W&B's transaction log without them. The resume reads
    that log and sends again, from the run folder, what W&B does not hold."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "wandb_kill.py")
    logdir = str(tmp_path / "run")
    # Each process its own W&B service (an earlier test's wandb.init left this process's in the environment).
    env = {key: value for key, value in os.environ.items() if key != "WANDB_SERVICE"}
    killed = subprocess.run([sys.executable, script, logdir, wandb_offline, "0", "14", "kill"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert killed.returncode == -9, killed.stderr[-3000:]
    held_before = {step for run in wandb_runs(wandb_offline) for step, _ in run.scalars().get("train/loss", [])}
    resumed = subprocess.run([sys.executable, script, logdir, wandb_offline, "10", "20", "close"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = [(s, float(s)) for s in range(1, 11)] + [(s, 1000.0 + s) for s in range(11, 21)]
    assert _tb_scalars(logdir)["train/loss"] == expected
    # What a W&B user sees: every step once, each with the value TensorBoard has.
    assert _wandb_seen(wandb_offline)["train/loss"] == expected
    if held_before != set(range(1, 15)):  # W&B had not written (all) the rows when the process died
        assert "sent again" in resumed.stderr


def test_a_backend_that_is_down_costs_one_warning_and_a_bounded_close(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger = _torch_run(str(tmp_path / "run"), 1, 8, backend_timeout=20,
                            backends={"mlflow": {"tracking_uri": "http://127.0.0.1:9", "experiment": "down"}})
        started = time.monotonic()
        logger.close()
        closing = time.monotonic() - started
    said = [str(w.message) for w in caught if issubclass(w.category, unitb.UnitbWarning)]
    assert len(said) == 1 and "mlflow" in said[0] and "TensorBoard is unaffected" in said[0]
    assert closing < 20
    assert [s for s, _ in _tb_scalars(logger.run_dir)["train/loss"]] == list(range(1, 9))


def test_unitb_push_sends_a_finished_run_once(tmp_path, wandb_offline, mlflow_server, capsys):
    logger = _torch_run(str(tmp_path / "runs" / "plain"), 1, 6)
    logger.close()
    argv = ["push", str(tmp_path / "runs"), "--to", "wandb", "--to", "mlflow", "--tracking-uri", mlflow_server.uri,
            "--experiment", "t5", "--wandb-dir", wandb_offline]
    assert cli.main(argv) == 0
    assert "wandb up to step 6" in capsys.readouterr().out
    tb = _tb_scalars(logger.run_dir)
    assert _wandb_seen(wandb_offline) == tb
    (found,) = _only_run(mlflow_server, "t5")
    assert mlflow_server.history(found.info.run_id) == tb
    # MLflow shows the training's own start and end, not the push's: the run's first and last event times.
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    times = [event.wall_time for path in reader.event_files(logger.run_dir) for event in EventFileLoader(path).Load()]
    assert (found.info.start_time, found.info.end_time) == (int(min(times) * 1000), int(max(times) * 1000))
    assert cli.main(argv) == 0  # again: the same backend runs, nothing sent twice
    assert _wandb_seen(wandb_offline) == tb
    (again,) = _only_run(mlflow_server, "t5")
    assert again.info.run_id == found.info.run_id and mlflow_server.history(found.info.run_id) == tb


def test_bad_backend_arguments_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'neptune'"):
        unitb.TorchLogger(str(tmp_path), backends=("neptune",))
    with pytest.raises(ValueError, match="unknown option"):
        unitb.TorchLogger(str(tmp_path), backends={"wandb": {"projekt": "x"}})
    with pytest.raises(ValueError, match="backend_timeout"):
        unitb.TorchLogger(str(tmp_path), backends=("wandb",), backend_timeout=0)


def test_an_mmengine_run_reaches_the_backends_with_its_config(tmp_path, wandb_offline, mlflow_server):
    import mmengine_pose

    hook = dict(grad_norm_interval=4, scalar_interval=2, train_image_interval=8, val_image_interval=1,
                backends={"wandb": {"dir": wandb_offline, "project": "pose"},
                          "mlflow": {"tracking_uri": mlflow_server.uri, "experiment": "pose"}})
    mmengine_pose.build_runner(str(tmp_path), steps=16, hook=hook).train()
    run_dir = mmengine_pose.vis_dir(str(tmp_path))
    tb = _tb_scalars(run_dir)
    assert "val/PCK" in tb or any(tag.startswith("val/") for tag in tb)
    (run,) = wandb_runs(wandb_offline)
    assert run.scalars() == tb
    assert run.kinds().get("train/image") == "image-file" and run.config["framework"] == "pytorch-mmengine"
    (found,) = _only_run(mlflow_server, "pose")
    assert mlflow_server.history(found.info.run_id) == tb
    assert found.data.params["optimizer"] == "SGD" and found.data.params["optimizer.momentum"] == "0.9"
    assert found.info.run_name == f"{os.path.basename(tmp_path)}/{os.path.basename(os.path.dirname(run_dir))}"


def test_unitb_push_streams_a_long_run_held_in_several_files(tmp_path, wandb_offline, mlflow_server, monkeypatch):
    """Two event files whose steps interleave, read in small blocks: each backend gets every
    step once, in order, while the forwarder holds only the steps between the files' fronts."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from unitb.read import records

    run = tmp_path / "runs" / "two-files"
    for name, tags in (("a", ("train/loss", "train/lr")), ("b", ("val/acc",))):
        writer = EventFileWriter(str(run), filename_suffix=f".{name}")
        for step in range(1, 401):
            values = [summary_pb2.Summary.Value(tag=tag, simple_value=step / 7 + len(tag)) for tag in tags]
            writer.add_event(event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary_pb2.Summary(value=values)))
        writer.close()
    monkeypatch.setattr(records, "BLOCK_BYTES", 2048)  # many blocks per file
    held = []
    ready = backends.StepBuffer.ready
    monkeypatch.setattr(backends.StepBuffer, "ready", lambda self, below: held.append(len(self.pending)) or ready(self, below))
    assert cli.main(["push", str(tmp_path / "runs"), "--to", "wandb", "--to", "mlflow", "--tracking-uri",
                     mlflow_server.uri, "--experiment", "t9", "--wandb-dir", wandb_offline]) == 0
    tb = _tb_scalars(str(run))
    assert sorted(tb) == ["train/loss", "train/lr", "val/acc"] and all(len(p) == 400 for p in tb.values())
    assert _wandb_seen(wandb_offline) == tb
    (found,) = _only_run(mlflow_server, "t9")
    assert mlflow_server.history(found.info.run_id) == tb
    assert len(held) > 10 and max(held) < 100  # a window of steps, never the whole run (400 steps)


def test_a_sweeps_trials_are_one_wandb_group_and_children_of_one_mlflow_run(tmp_path, wandb_offline, mlflow_server,
                                                                            monkeypatch):
    """Two trials of `unitb sweep run` with both backends: W&B groups them by the sweep, and
    MLflow nests them under one parent run named after it, however many trials start at once."""
    pytest.importorskip("optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    (tmp_path / "train.py").write_text(textwrap.dedent(f'''
        import argparse, torch
        from torch_adapter import TorchLogger
        parser = argparse.ArgumentParser(); parser.add_argument("--lr", type=float); lr = parser.parse_args().lr
        log = TorchLogger("not-used", log_speed=False, log_model_stats=False, log_train_images=False,
                          backends={{"wandb": {{"project": "sweeps", "dir": {wandb_offline!r}}},
                                    "mlflow": {{"experiment": "sweeps"}}}})
        for step in range(1, 5):
            log.log_step(step, loss=1.0 / (step * lr))
        log.log_scalar("val/loss", 1.0 / lr)
        log.close()
    '''))
    (tmp_path / "sweep.yaml").write_text("program: train.py\nmethod: grid\nmetric: {name: val/loss}\n"
                                         "parameters: {lr: {values: [1.0, 2.0]}}\n")
    done = subprocess.run([sys.executable, "-m", "unitb", "sweep", "run", "sweep.yaml", "--agents", "2", "--name",
                           "sw1"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = wandb_runs(wandb_offline)
    assert len(runs) == 2 and {run.group for run in runs} == {"sw1"}
    assert sorted(run.config["lr"] for run in runs) == [1.0, 2.0]
    client = mlflow_server.client()
    found = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parents = [run for run in found if run.data.tags.get("unitb.parent") == "sw1"]
    assert len(parents) == 1 and parents[0].info.run_name == "sw1"
    children = [run for run in found if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(float(run.data.params["lr"]) for run in children) == [1.0, 2.0]
    assert sorted(run.info.run_name for run in children) == ["trial-000", "trial-001"]
