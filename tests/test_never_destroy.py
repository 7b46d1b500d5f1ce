"""Never destroy what a user logged: a second fresh run into a used folder, and restarts after
a hard kill (Keras BackupAndRestore in both callback orders, ModelCheckpoint + load_weights,
mmengine resume into a new timestamp folder). Every reader sees each step once, and nothing
logged before the resume point is lost."""
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import unitb
from unitb import reader
from unitb.folder import set_aside

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")


def _loss(run_dir):
    return {r.step: r.value for r in reader.read_run(run_dir) if r.tag == "train/loss"}


def _loss_steps(run_dir):
    return [r.step for r in reader.read_run(run_dir) if r.tag == "train/loss"]


def _accumulator_steps(run_dir, tag="train/loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    if tag in acc.Tags().get("tensors", []):
        return [e.step for e in acc.Tensors(tag)]
    return [e.step for e in acc.Scalars(tag)]


def _script(name, *args, env=None):
    done = subprocess.run([sys.executable, os.path.join(HERE, "scripts", name), *map(str, args)],
                          capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=600)
    return done


# ---------------------------------------------------------------- a second fresh run
def _messages(caught):
    return [str(w.message) for w in caught]


def test_torch_logger_fresh_run_into_a_used_folder(tmp_path):
    import torch

    def train(seed):
        torch.manual_seed(seed)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        log = unitb.TorchLogger(str(tmp_path / "run"), model=model, optimizer=opt, scalar_interval=1)
        for step in range(1, 5):
            loss = model(torch.ones(2, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.log_step(step, loss=float(seed * 100 + step))
        log.close()
        return log

    first = train(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        second = train(2)
    assert first.run_dir == str(tmp_path / "run") and second.run_dir == str(tmp_path / "run-2")
    assert _loss(first.run_dir) == {s: 100.0 + s for s in range(1, 5)}  # untouched
    assert _loss(second.run_dir) == {s: 200.0 + s for s in range(1, 5)}
    assert [m for m in _messages(caught) if "already holds another run" in m and "run-2" in m]


def test_tf_logger_fresh_run_into_a_used_folder(tmp_path):
    for seed in (1, 2):
        log = unitb.TFLogger(str(tmp_path / "run"), scalar_interval=1)
        for step in range(1, 4):
            log.log_train_step(step, losses={"total": seed * 100.0 + step})
        log.close()
    assert _loss(str(tmp_path / "run")) == {s: 100.0 + s for s in range(1, 4)}
    assert _loss(str(tmp_path / "run-2")) == {s: 200.0 + s for s in range(1, 4)}


def test_keras_fresh_model_into_a_used_folder(tmp_path):
    import keras

    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    dirs = []
    for _ in range(3):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        cb = unitb.TFCallback(str(tmp_path / "run"), scalar_interval=1)
        model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0, callbacks=[cb])
        model.fit(x, x[:, :1], batch_size=4, epochs=1, verbose=0, callbacks=[cb])  # same run, continues
        dirs.append(cb.run_dir)
    assert dirs == [str(tmp_path / n) for n in ("run", "run-2", "run-3")]
    for run_dir in dirs:
        assert _loss_steps(run_dir) == list(range(1, 9))
        # the header once, the model statistics again at each fit's end
        assert [r.step for r in reader.read_run(run_dir) if r.tag == "model/total_parameters"] == [0, 4, 8]


def test_mmengine_fresh_run_into_a_fixed_folder(tmp_path):
    import mmengine_pose

    tb_dir = str(tmp_path / "tb")
    for index in range(2):
        mmengine_pose.build_runner(str(tmp_path / f"work{index}"), steps=8, tb_dir=tb_dir, checkpoints=False,
                                   hook=dict(scalar_interval=1, grad_norm_interval=4, keep_mmengine_scalars=True)).train()
    first, second = reader.read_run(tb_dir), reader.read_run(tb_dir + "-2")
    for rows in (first, second):
        assert [r.step for r in rows if r.tag == "train/loss"] == list(range(1, 9))
        assert [r.step for r in rows if r.tag == "model/total_parameters"] == [0, 8]
        assert any(r.tag == "loss" for r in rows)  # mmengine's LoggerHook scalars follow the run


# ---------------------------------------------------------------- Keras restarts after a kill
@pytest.mark.parametrize("mode", ["backup-first", "unitb-first", "checkpoint", "checkpoint-built"])
def test_keras_restart_after_a_kill_keeps_every_step_once(tmp_path, mode):
    crashed = _script("keras_restart.py", tmp_path, mode, 10)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    run_dir = str(tmp_path / "run")
    before = _loss(run_dir)
    assert sorted(before)[:8] == list(range(1, 9)) and max(before) >= 9  # orphans were written
    restarted = _script("keras_restart.py", tmp_path, mode, 0)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "iterations 16" in restarted.stdout
    assert reader.event_files(run_dir) and not os.path.exists(run_dir + "-2")
    steps = _loss_steps(run_dir)
    assert steps == list(range(1, 17)), steps
    after = _loss(run_dir)
    assert all(after[s] == before[s] for s in range(1, 9))  # what came before the resume point is kept
    assert _accumulator_steps(run_dir) == list(range(1, 17))
    grads = [r.step for r in reader.read_run(run_dir) if r.tag == "train/gradient_norm/global"]
    assert grads == list(range(1, 17))
    assert [r.step for r in reader.read_run(run_dir) if r.tag == "model/total_parameters"] == [0, 16]
    # The orphans are kept, outside what TensorBoard reads, and the message says where.
    (trash,) = set_aside.removals(run_dir)
    assert "resume-8" in trash
    message = restarted.stderr.replace("\n", " ")
    assert "resumed at step 8: moved" in message and ("of step 9," in message or "of steps 9.." in message)
    assert trash in message and "unitb restore" in message


def test_backup_and_restore_resume_in_tensorboard_both_loaders(tmp_path):
    from tb_server import tensorboard

    assert _script("keras_restart.py", tmp_path, "unitb-first", 10).returncode == 3
    assert _script("keras_restart.py", tmp_path, "unitb-first", 0).returncode == 0
    for fast in (True, False):
        with tensorboard(str(tmp_path), load_fast=fast) as server:
            assert server.scalar_steps("run", "train/loss") == list(range(1, 17)), fast


# ---------------------------------------------------------------- mmengine restart after a kill
def test_mmengine_resume_into_a_new_timestamp_folder(tmp_path):
    import mmengine_pose

    work = str(tmp_path / "work")
    crashed = _script("mmengine_crash.py", work, 12)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    first_dir = mmengine_pose.vis_dir(work)
    before = _loss(first_dir)
    assert sorted(before) == list(range(1, 13))
    # A start that failed before training (a checkpoint that would not load) left a later
    # timestamp folder holding only mmengine's config text: the resume must not carry from it.
    from torch.utils.tensorboard import SummaryWriter

    first_stamp = os.path.basename(os.path.dirname(first_dir))
    while time.strftime("%Y%m%d_%H%M%S") <= first_stamp:  # a fast crash ends within its start's second
        time.sleep(0.1)
    failed_dir = os.path.join(work, time.strftime("%Y%m%d_%H%M%S"), "vis_data")
    with SummaryWriter(failed_dir) as writer:
        writer.add_text("config", "model = dict()", 0)
    time.sleep(1.1)  # the restart's timestamp folder comes after it
    # torch >= 2.6 loads weights-only by default: the hook in the config is all it takes.
    restarted = _script("mmengine_crash.py", work, 0, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "0"})
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "Weights only load failed" not in restarted.stderr
    second_dir = mmengine_pose.vis_dir(work)
    assert second_dir not in (first_dir, failed_dir)
    # One clean curve in the new folder: steps 1..8 carried over from before the checkpoint.
    assert _loss_steps(second_dir) == list(range(1, 17))
    after = _loss(second_dir)
    assert all(after[s] == before[s] for s in range(1, 9))
    assert _accumulator_steps(second_dir) == list(range(1, 17))
    assert reader.find_runs(work) == sorted([failed_dir, second_dir])  # the earlier folder shows nothing twice
    assert [r.step for r in reader.read_run(second_dir) if r.tag == "model/total_parameters"] == [0, 16]
    (trash,) = set_aside.removals(work)
    assert trash.startswith(first_dir)
    # And everything can be put back where it was.
    set_aside.restore(trash)
    assert _loss(first_dir) == before
