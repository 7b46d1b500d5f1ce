"""Runs in object storage: a real S3 (moto's server on loopback), real writers, real Keras
fit and mmengine Runner; what the store holds is read back through the unitb reader."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from unitb import UnitbWarning
from unitb import reader
from unitb.files import storage
from unitb.commands.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_torch(logger, steps, start=1, pause=0.0, on_step=None):
    torch.manual_seed(0)
    model, opt = logger.model, logger.optimizer
    for step in range(start, start + steps):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        logger.log_step(step, loss=loss, epoch=step / 4)
        if on_step is not None:
            on_step(step)
        if pause:
            time.sleep(pause)


def _torch_logger(url, **kwargs):
    from torch_adapter import TorchLogger

    model = torch.nn.Linear(4, 2)
    return TorchLogger(url, model, torch.optim.SGD(model.parameters(), 0.1), **kwargs)


def _loss_steps(run):
    return [step for step, _value in reader.scalars(run).get("train/loss", [])]


def test_torch_logger_to_s3_reads_back_from_the_store(s3_env, moto_store):
    url = s3_env + "/runs/exp"
    log = _torch_logger(url, scalar_interval=1, grad_norm_interval=2, upload_interval=0.5)
    assert log.run_dir == url
    _train_torch(log, 12)
    log.close()
    spool = storage.spool_path(url)
    objects = moto_store.objects(url)
    events = [k for k in objects if "tfevents" in k]
    assert len(events) == 1 and objects[events[0]] == os.path.getsize(os.path.join(spool, events[0]))
    assert ".unitb-mirror.json" not in objects  # unitb's bookkeeping stays local
    assert _loss_steps(url) == list(range(1, 13))  # read from the store, not the spool
    assert reader.scalars(url)["train/loss"] == reader.scalars(spool)["train/loss"]
    assert [s for s, _ in reader.scalars(url)["train/gradient_norm/global"]] == [1, 2, 4, 6, 8, 10, 12]

    # A second fresh run into the same URL never touches the first: it goes to exp-2.
    with pytest.warns(UnitbWarning, match=r"exp already holds another run.*writes to s3://.*/runs/exp-2"):
        second = _torch_logger(url, scalar_interval=1, upload_interval=0.5)
    assert second.run_dir == url + "-2"
    _train_torch(second, 3)
    second.close()
    assert _loss_steps(url) == list(range(1, 13)) and _loss_steps(url + "-2") == [1, 2, 3]
    assert reader.find_runs(s3_env + "/runs") == [url, url + "-2"]
    # The folder of runs read as one: fetched ahead into local copies the workers read; the same
    # rows, in the same order, as each run read straight from the store.
    from unitb.read import logdir

    runs = logdir.runs_below(s3_env + "/runs")
    whole = [name for name, _summary in logdir.tag_summaries(s3_env + "/runs", runs)]
    assert whole == ["exp", "exp-2"]
    import io

    together, one_by_one = io.BytesIO(), io.BytesIO()
    logdir.export_runs(s3_env + "/runs", runs, "csv", together)
    for name, folder in runs:
        logdir.export_runs(folder, [(name, folder)], "csv", one_by_one)
    lines = [line for line in one_by_one.getvalue().splitlines() if not line.startswith(b"run,")]
    assert together.getvalue().splitlines()[1:] == lines and len(lines) > 15
    import unitb

    table = {row["run"]: row for row in unitb.runs(s3_env + "/runs").to_pylist()}  # the index, fetched ahead
    assert {name: (row["path"], row["status"], row["steps"]) for name, row in table.items()} == {
        "exp": (url, "finished", 12), "exp-2": (url + "-2", "finished", 3)}


def test_cli_reads_urls_and_pull_feeds_tensorboard(s3_env, tmp_path, capsys):
    from tb_server import tensorboard

    url = s3_env + "/runs/exp"
    log = _torch_logger(url, scalar_interval=2, upload_interval=0.5)
    _train_torch(log, 10)
    log.close()
    assert cli_main(["tags", url]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:5] == ["train/loss", "scalar", "6", "1", "10"] for line in out.splitlines())
    csv_path = tmp_path / "loss.csv"
    assert cli_main(["export", url, "-o", str(csv_path)]) == 0
    assert sum(1 for line in csv_path.read_text().splitlines() if line.startswith("train/loss,")) == 6
    local = tmp_path / "pulled"
    assert cli_main(["pull", s3_env + "/runs", str(local)]) == 0
    assert "fetched 2 file(s), 0 unchanged" in capsys.readouterr().out  # the event file and the run's end mark
    assert cli_main(["diff", url, str(local / "exp")]) == 0  # the store's copy and the pulled one agree
    assert cli_main(["pull", s3_env + "/runs", str(local)]) == 0
    assert "fetched 0 file(s), 2 unchanged" in capsys.readouterr().out  # nothing changed: nothing fetched
    # The runs table reads the store and the pulled copy alike: one finished run, its last loss.
    import unitb

    for where in (s3_env + "/runs", str(local)):
        (row,) = unitb.runs(where).to_pylist()
        assert (row["run"], row["status"], row["steps"]) == ("exp", "finished", 10)
    with tensorboard(str(local)) as server:  # what a person sees
        assert server.scalar_steps("exp", "train/loss") == [1, 2, 4, 6, 8, 10]


def test_unitb_command_follows_a_live_run(s3_env, tmp_path):
    """The commands of docs/object-storage.md as a user types them: the environment points at the store."""
    unitb_bin = os.path.join(os.path.dirname(sys.executable), "unitb")
    url = s3_env + "/live/exp"
    log = _torch_logger(url, scalar_interval=1, upload_interval=0.3)
    _train_torch(log, 4)
    log.flush()
    follow = subprocess.Popen([unitb_bin, "pull", s3_env + "/live", str(tmp_path / "live"), "--every", "0.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        local = str(tmp_path / "live" / "exp")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _safe_steps(local)[-1:] != [4]:
            time.sleep(0.3)
        assert _safe_steps(local) == [1, 2, 3, 4]
        _train_torch(log, 4, start=5)
        log.close()
        while time.monotonic() < deadline and _safe_steps(local)[-1:] != [8]:
            time.sleep(0.3)
        assert _safe_steps(local) == list(range(1, 9))  # the pulled copy followed the live run
    finally:
        follow.terminate()
        follow.wait(timeout=30)
    tags = subprocess.run([unitb_bin, "tags", url], capture_output=True, text=True, timeout=120)
    assert tags.returncode == 0, tags.stderr
    assert any(line.split()[:5] == ["train/loss", "scalar", "8", "1", "8"] for line in tags.stdout.splitlines())


def _safe_steps(run):
    try:
        return _loss_steps(run)
    except Exception:
        return []


def test_keras_fit_to_s3(s3_env, moto_store):
    import keras

    import unitb

    url = s3_env + "/keras/fit"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="hidden"), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    cb = unitb.TFCallback(url, scalar_interval=2, grad_norm_interval=4, upload_interval=0.5)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[cb], verbose=0)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)  # continues at step 9
    assert cb.run_dir == url
    cb.close()  # the last upload (without it, the interpreter's exit makes it)
    assert _loss_steps(url) == [1, 2, 4, 6, 8, 10, 12]
    assert [s for s, _ in reader.scalars(url)["train/gradient_norm/global"]] == [1, 4, 8, 12]
    assert len([k for k in moto_store.objects(url) if "tfevents" in k]) == 2  # one per fit
    tags = {e["tag"] for e in reader.tag_summary(url)}
    assert "model/total_parameters" in tags and "train/learning_rate/hidden" not in tags
    assert any(tag.startswith("train/learning_rate") for tag in tags)


def test_mmengine_runner_out_dir_with_backend_args(moto_store, tmp_path, monkeypatch):
    """The hook's ``out_dir`` + ``backend_args`` as an mmengine config writes them (no
    AWS_* environment: the endpoint and credentials come from backend_args)."""
    import uuid

    import mmengine_pose

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    bucket = moto_store.make_bucket(f"unitb-{uuid.uuid4().hex[:12]}")
    backend_args = dict(endpoint_url=moto_store.endpoint, key="testing", secret="testing",
                        client_kwargs=dict(region_name="us-east-1"))
    work_dir = str(tmp_path / "work_dirs" / "pose")
    runner = mmengine_pose.build_runner(work_dir, steps=8, checkpoints=False, hook=dict(
        out_dir=bucket + "/mm", backend_args=backend_args, grad_norm_interval=2, upload_interval=0.5))
    runner.train()
    local = mmengine_pose.vis_dir(work_dir)
    stamp = os.path.basename(os.path.dirname(local))
    url = f"{bucket}/mm/pose/{stamp}/vis_data"
    opts = backend_args
    files = [f for f in storage.walk_files(url, opts) if "tfevents" in f]
    assert len(files) == 1
    fs, _ = storage.filesystem(url, opts)
    assert fs.size(files[0]) == os.path.getsize(os.path.join(local, files[0].rsplit("/", 1)[-1]))
    for key, value in moto_store.env().items():  # how `unitb tags` would be pointed at the store
        monkeypatch.setenv(key, value)
    remote = reader.scalars(url)
    assert [s for s, _ in remote["train/loss"]] == list(range(1, 9))
    assert remote == reader.scalars(local)


def test_hook_rejects_bad_store_arguments():
    from torch_adapter import EnhancedTensorBoardHook

    with pytest.raises(ValueError, match="backend_args must be a dict"):
        EnhancedTensorBoardHook(backend_args="s3")
    with pytest.raises(ValueError, match="cannot use nosuchscheme://x"):
        EnhancedTensorBoardHook(out_dir="nosuchscheme://x")
    with pytest.raises(ValueError, match="upload_interval must be a positive number"):
        EnhancedTensorBoardHook(out_dir="s3://b/x", upload_interval=0)


# ---------------------------------------------------------------- resume on a fresh machine
def _script(env, *args):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "scripts", "s3_tf_loop.py"), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)
    return done


def test_custom_tf_loop_resumes_from_the_store_on_a_fresh_machine(s3_env, moto_store, tmp_path):
    url = s3_env + "/yolo/run"
    ckpt = tmp_path / "ckpt"
    env = {**os.environ, "UNITB_SPOOL": str(tmp_path / "machine-a")}
    crashed = _script(env, url, ckpt, 30, 20)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    assert _loss_steps(url) == list(range(1, 21))  # the store holds 17..20, which the checkpoint (16) has not
    env = {**os.environ, "UNITB_SPOOL": str(tmp_path / "machine-b")}  # a fresh machine: nothing spooled
    restarted = _script(env, url, ckpt, 30, 0)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert f"run_dir {url}\n" in restarted.stdout
    assert "resumed at step 16: moved" in restarted.stderr and "steps 17..20" in restarted.stderr
    assert _loss_steps(url) == list(range(1, 31))  # each step once in the store
    objects = moto_store.objects(url)
    removed = [k for k in objects if k.startswith(".unitb-removed/")]
    assert any(k.endswith("manifest.json") for k in removed)  # orphans set aside in the store too
    assert not [k for k in objects if "tfevents" in k and not k.startswith(".unitb-removed/")
                and "unitb-resumed-16" not in k and objects[k] == 0]
    # What was set aside can be pulled back whole.
    pulled = tmp_path / "pulled"
    assert cli_main(["pull", url, str(pulled), "--include-removed"]) == 0
    from unitb.folder import set_aside

    (trash,) = set_aside.removals(str(pulled))
    set_aside.restore(trash)
    assert sorted(set(_loss_steps(str(pulled)))) == list(range(1, 31))


def test_mmengine_resume_from_the_store_on_a_fresh_machine(s3_env, moto_store, tmp_path):
    import shutil

    work = str(tmp_path / "work")
    out_dir = s3_env + "/mm"
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    script = os.path.join(ROOT, "tests", "scripts", "mmengine_crash.py")
    crashed = subprocess.run([sys.executable, script, work, "12", out_dir], capture_output=True, text=True,
                             env=env, timeout=600)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    (first_stamp,) = [d for d in os.listdir(work) if os.path.isdir(os.path.join(work, d))]
    first_url = f"{out_dir}/work/{first_stamp}/vis_data"
    assert _loss_steps(first_url) == list(range(1, 13))
    shutil.rmtree(os.path.join(work, first_stamp))  # a fresh machine: the checkpoints, no event files
    time.sleep(1.1)  # mmengine's next timestamp folder is a second later
    restarted = subprocess.run([sys.executable, script, work, "0", out_dir], capture_output=True, text=True,
                               env=env, timeout=600)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    (second_stamp,) = [d for d in os.listdir(work) if os.path.isdir(os.path.join(work, d, "vis_data"))
                       and d != first_stamp]
    second_url = f"{out_dir}/work/{second_stamp}/vis_data"
    assert _loss_steps(second_url) == list(range(1, 17))  # steps 1..8 carried over, 9..16 trained again
    assert reader.find_runs(out_dir) == [second_url]  # the interrupted folder shows nothing twice
    removed = [k for k in moto_store.objects(first_url) if k.startswith(".unitb-removed/")]
    assert any("removed-events" in k for k in removed) and any(k.endswith("manifest.json") for k in removed)


def test_big_growing_files_are_sent_again_less_often(s3_env, moto_store, tmp_path, monkeypatch):
    """Stores cannot append: a grown file goes again whole, so a big one waits longer
    (once per interval per REUPLOAD_MB of its size), except when every change is asked for."""
    from unitb.store import mirror as mirror_mod

    monkeypatch.setattr(mirror_mod, "REUPLOAD_MB", 1)  # 1 MB: a 3 MB file waits 3 intervals
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "small").write_bytes(b"x" * 1000)
    (folder / "big").write_bytes(b"y" * (3 << 20))
    mirror = mirror_mod.Mirror(str(folder), s3_env + "/grow", interval=0.5)
    assert mirror.sync_once(force=False) == 2  # first time: everything goes
    with open(folder / "small", "ab") as f:
        f.write(b"x")
    with open(folder / "big", "ab") as f:
        f.write(b"y")
    time.sleep(0.6)
    assert mirror.sync_once(force=False) == 1  # the small file is due after one interval, the big one not
    assert set(mirror.pending()) == {"big"}
    time.sleep(1.1)  # 3 intervals since the big file went
    assert mirror.sync_once(force=False) == 1 and not mirror.pending()
    with open(folder / "big", "ab") as f:
        f.write(b"y")
    assert mirror.sync_once(force=True) == 1  # a checkpoint or the end sends every change
    assert moto_store.objects(s3_env + "/grow") == {"small": 1001, "big": (3 << 20) + 2}


def test_hook_fixed_save_dir_on_a_second_machine_keeps_the_first_run(s3_env, tmp_path, capsys):
    """A fixed TensorBoard ``save_dir`` that another machine already filled in ``out_dir``:
    this fresh run goes to ``<save_dir>-2`` (here and in the store) instead of sharing it."""
    import mmengine_pose

    out_dir = s3_env + "/fixed"
    for machine in ("a", "b"):
        runner = mmengine_pose.build_runner(str(tmp_path / machine / "work"), steps=8, checkpoints=False,
                                            tb_dir=str(tmp_path / machine / "tb"),
                                            hook=dict(out_dir=out_dir, upload_interval=0.5))
        runner.train()
    assert f"({out_dir}/tb in the store) already holds another run; this fresh run (step 0) writes to " \
        f"{tmp_path / 'b' / 'tb'}-2" in capsys.readouterr().out
    assert reader.find_runs(out_dir) == [f"{out_dir}/tb", f"{out_dir}/tb-2"]
    assert _loss_steps(f"{out_dir}/tb") == list(range(1, 9)) and _loss_steps(f"{out_dir}/tb-2") == list(range(1, 9))
    assert not reader.event_files(str(tmp_path / "b" / "tb"))  # machine b's writer moved out of the taken name


@pytest.mark.parametrize("ending", ["exit", "sigterm"])
def test_a_script_that_never_closes_still_uploads_its_last_records(s3_env, tmp_path, ending):
    """No close(): at the interpreter's exit, or on SIGTERM (a preempted job), the writers are
    written out first and then the last upload runs."""
    import signal

    url = f"{s3_env}/noclose/{ending}"
    code = f"""
import os, signal, sys, torch
from torch_adapter import TorchLogger
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), 0.1)
log = TorchLogger({url!r}, model, opt, scalar_interval=1, upload_interval=3600)
for step in range(1, 31):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    log.log_step(step, loss=loss, epoch=step / 10)
print("trained", flush=True)
if {ending!r} == "sigterm":
    os.kill(os.getpid(), signal.SIGTERM)
"""
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "trained" in done.stdout, done.stderr[-3000:]
    assert done.returncode == (-signal.SIGTERM if ending == "sigterm" else 0), done.stderr[-3000:]
    assert _loss_steps(url) == list(range(1, 31))  # nothing uploaded before the end (interval 1 h)


def test_credentials_in_the_config_never_reach_the_event_files(tmp_path):
    from torch_adapter import TorchLogger

    config = ("visualizer = dict(type='Visualizer')\n"
              "custom_hooks = [dict(type='EnhancedTensorBoardHook', out_dir='s3://b/mm', "
              "backend_args=dict(endpoint_url='http://minio:9000', key='AKIAEXAMPLE', secret=\"wJalrEXAMPLE\"))]\n"
              "data = dict(num_keypoints=17)\n")
    model = torch.nn.Linear(4, 2)
    log = TorchLogger(str(tmp_path), model, torch.optim.SGD(model.parameters(), 0.1), config=config)
    log.close()
    (text,) = [r.value for r in reader.read_run(str(tmp_path)) if r.kind == "text"]
    assert "AKIAEXAMPLE" not in text and "wJalrEXAMPLE" not in text
    assert "key='***', secret='***'" in text and "endpoint_url='http://minio:9000'" in text
    assert "num_keypoints=17" in text
