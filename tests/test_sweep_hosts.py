"""A sweep across hosts: agents as separate processes (each with its own home and spool folder,
standing in for hosts) sharing one study in a real PostgreSQL server, and an agent that dies."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("optuna")
pytest.importorskip("yaml")

from sweep_trials import grid_trial  # noqa: E402
from unitb import reader  # noqa: E402
from unitb.sweep import study as sweep_study  # noqa: E402

TRIAL = grid_trial((3, 20), 1.5, quick=0.2)
GRID = {"program": "trial.py", "method": "grid", "metric": {"name": "val/score", "goal": "maximize"},
        "parameters": {"x": {"values": [1, 2, 3]}, "y": {"values": [10, 20]}}}


def host_env(tmp_path, name: str) -> dict:
    """A host of its own: its own home and spool folders."""
    home = tmp_path / "hosts" / name
    (home / "spool").mkdir(parents=True)
    return {**os.environ, "HOME": str(home), "UNITB_SPOOL": str(home / "spool")}


def start_agents(tmp_path, ident: str, url: str, count: int):
    return [subprocess.Popen([sys.executable, "-m", "unitb", "sweep", "agent", ident, "--storage", url, "--logdir",
                              str(tmp_path / "shared"), "--heartbeat", "1"], cwd=tmp_path,
                             env=host_env(tmp_path, f"host{n}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for n in range(count)]


def create(tmp_path, url: str, name: str) -> str:
    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "sweep.json").write_text(json.dumps(GRID))
    made = subprocess.run([sys.executable, "-m", "unitb", "sweep", "create", "sweep.json", "--storage", url, "--name",
                           name, "--logdir", str(tmp_path / "shared")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    assert f"unitb sweep agent {name} --logdir {tmp_path / 'shared'} --storage {url}" in made.stderr
    return made.stdout.strip()


def test_three_hosts_share_one_grid_through_postgres(tmp_path, postgres):
    url = postgres.database("grid3")
    ident = create(tmp_path, url, "hosts")
    agents = start_agents(tmp_path, ident, url, 3)
    for agent in agents:
        out, err = agent.communicate(timeout=180)
        assert agent.returncode == 0, err[-3000:]
    trials = sweep_study.find(ident, database=url).study().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert sorted((t.params["x"], t.params["y"]) for t in trials) == [(x, y) for x in (1, 2, 3) for y in (10, 20)]
    # Each trial ran on one host into a folder of its own, and its value is what its run wrote.
    agents_seen = set()
    for trial in trials:
        run = trial.user_attrs["unitb.run"]
        assert reader.scalars(run)["val/score"][-1] == (3, trial.params["x"] * trial.params["y"] + 3.0)
        agents_seen.add(json.load(open(os.path.join(run, "pids.json")))["agent"])
    assert len(agents_seen) >= 2  # the hosts shared the work
    status = subprocess.run([sys.executable, "-m", "unitb", "sweep", "status", ident, "--storage", url],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert status.stdout.splitlines()[0] == "sweep hosts: 6 done, 0 running, 0 pruned, 0 failed — best " \
        f"val/score 63 (trial {next(t.number for t in trials if (t.params['x'], t.params['y']) == (3, 20))})"


def test_an_agent_that_dies_mid_trial_has_its_combination_run_again_elsewhere(tmp_path, postgres):
    url = postgres.database("dying")
    ident = create(tmp_path, url, "dying")
    agents = start_agents(tmp_path, ident, url, 2)
    shared = tmp_path / "shared" / ident
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:  # the slow combination's first trial
        for pids in shared.glob("trial-*/pids.json"):
            args = json.load(open(pids.parent / ".unitb-trial-args.json"))
            if (args["x"], args["y"]) == (3, 20):
                victim = pids.parent, json.load(open(pids))
        time.sleep(0.1)
    assert victim is not None
    folder, pids = victim
    # The host is lost: the agent and its trial die at once, nothing said to anyone.
    os.kill(pids["agent"], signal.SIGKILL)
    os.killpg(pids["trial"], signal.SIGKILL)
    survivor = next(agent for agent in agents if agent.pid != pids["agent"])
    out, err = survivor.communicate(timeout=180)
    assert survivor.returncode == 0, err[-3000:]
    trials = sweep_study.find(ident, database=url).study().get_trials()
    dead = next(t for t in trials if str(folder).endswith(f"trial-{t.number:03d}"))
    assert dead.state.name == "FAIL"
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.state.name == "COMPLETE" and retry.params == {"x": 3, "y": 20}
    assert retry.value == 63.0
    # Both runs are kept, apart: the dead one as far as it got, the retry whole.
    retry_run = retry.user_attrs["unitb.run"]
    assert retry_run != str(folder)
    assert reader.scalars(retry_run)["val/score"] == [(1, 61.0), (2, 62.0), (3, 63.0)]
    assert [step for step, _ in reader.scalars(str(folder)).get("val/score", [])] in ([], [1], [1, 2])
    completed = sorted((t.params["x"], t.params["y"]) for t in trials if t.state.name == "COMPLETE")
    assert completed == [(x, y) for x in (1, 2, 3) for y in (10, 20)]
    status = subprocess.run([sys.executable, "-m", "unitb", "sweep", "status", ident, "--storage", url],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert f"trial {dead.number}: its agent stopped answering (no heartbeat)" in status.stdout
    for agent in agents:
        agent.kill()


def test_a_sweep_in_object_storage_puts_every_trial_run_in_the_bucket(tmp_path, s3_env, postgres):
    """--logdir s3://…: each trial's unitb run goes to the store (its spool on the agent's host),
    the agent follows it there, and status reads the sweep from the database."""
    pytest.importorskip("torch")
    url = postgres.database("store")
    (tmp_path / "train.py").write_text(textwrap.dedent('''
        import argparse
        from torch_adapter import TorchLogger
        parser = argparse.ArgumentParser(); parser.add_argument("--lr", type=float); lr = parser.parse_args().lr
        log = TorchLogger("not-used", log_speed=False, log_model_stats=False, log_train_images=False)
        for step in range(1, 5):
            log.log_step(step, loss=1.0 / (step * lr))
        log.log_scalar("val/loss", 1.0 / lr)
        log.close()
    '''))
    (tmp_path / "sweep.yaml").write_text("program: train.py\nmethod: grid\nmetric: {name: val/loss}\n"
                                         "parameters: {lr: {values: [1.0, 4.0]}}\n")
    logdir = f"{s3_env}/sweeps"
    done = subprocess.run([sys.executable, "-m", "unitb", "sweep", "run", "sweep.yaml", "--name", "st", "--logdir",
                           logdir, "--storage", url], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = sweep_study.find("st", database=url).study().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        run = trial.user_attrs["unitb.run"]
        assert run == f"{logdir}/st/trial-{trial.number:03d}"
        assert reader.scalars(run)["val/loss"] == [(4, 1.0 / trial.params["lr"])]  # read from the bucket
        values = reader.hparams(run)
        assert (values["lr"], values["sweep"], values["trial"]) == (trial.params["lr"], "st", trial.number)
    assert f"unitb pull {logdir}/st sweeps/st" in done.stdout
    status = subprocess.run([sys.executable, "-m", "unitb", "sweep", "status", "st", "--storage", url],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert f"{logdir}/st/trial-" in status.stdout and "2 done" in status.stdout


def test_the_database_away_for_a_while_loses_nothing_and_kills_no_one(tmp_path, postgres):
    """The server stops while trials run, for twice as long as a dead agent's grace (heartbeat 1 s,
    three beats), and comes back: the trials go on, each agent says so once and waits, nobody's
    trial is taken for dead (nobody could beat meanwhile), and every point and outcome reaches
    the study."""
    url = postgres.database("away")
    ident = create(tmp_path, url, "away")
    (tmp_path / "trial.py").write_text(grid_trial((3, 20), 4.0))  # the slow one: 12 s
    agents = start_agents(tmp_path, ident, url, 2)
    deadline = time.monotonic() + 120
    study = sweep_study.find(ident, database=url).study()
    while sum(t.state.name == "COMPLETE" for t in study.get_trials()) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    # The slow trial runs under one agent; the other, its work done, checks every beat for a dead one.
    postgres.pause()
    time.sleep(8)
    postgres.resume()
    for agent in agents:
        out, err = agent.communicate(timeout=240)
        assert agent.returncode == 0, err[-3000:]
        assert err.count("the sweep's database does not answer") <= 1 and "Traceback" not in err
        assert "took it for dead" not in err and "has not beaten" not in err
    trials = sweep_study.find(ident, database=url).study().get_trials()
    assert sorted(t.state.name for t in trials if not t.user_attrs.get("unitb.skipped")) == ["COMPLETE"] * 6
    assert not [t for t in trials if "failed_trial" in t.system_attrs]
    slow = next(t for t in trials if t.params == {"x": 3, "y": 20})
    assert slow.intermediate_values == {1: 61.0, 2: 62.0, 3: 63.0} and slow.value == 63.0


def test_the_slurm_example_runs_an_agent_the_cli_takes():
    """examples/sweeps/slurm_agents.sh: its agent line is one the CLI parses, with the storage and
    the store it names."""
    import shlex

    from unitb.commands import cli

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "examples", "sweeps", "slurm_agents.sh")) as handle:
        line = next(line for line in handle if line.startswith("unitb sweep agent"))
    words = shlex.split(line.replace('"$SWEEP_DB"', "postgresql://u@db/sweeps"))
    args = cli.build_parser().parse_args(words[1:])
    assert (args.command, args.verb, args.sweep, args.storage, args.logdir, args.count) == (
        "sweep", "agent", "pose-lr", "postgresql://u@db/sweeps", "s3://bucket/sweeps", 4)
    subprocess.run(["bash", "-n", os.path.join(root, "examples", "sweeps", "slurm_agents.sh")], check=True)
