"""Sweeps under what clusters do to them, each with real processes: an agent SIGKILLed with its
process group (its trial must end with it, and the sweep go on), a trial another agent failed
while it ran, two creates of one name released together, a metric that turns NaN or infinite,
and a journal file with a torn record."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("optuna")
pytest.importorskip("yaml")

from sweep_trials import grid_trial  # noqa: E402
from unitb.files.names import SWEEP_JOURNAL  # noqa: E402
from unitb.sweep import study as sweep_study  # noqa: E402
from unitb.sweep.agent import LATE  # noqa: E402

TRIAL = grid_trial((2, 20), 3.0, quick=0.1)
GRID = {"program": "trial.py", "method": "grid", "metric": {"name": "val/score", "goal": "maximize"},
        "parameters": {"x": {"values": [1, 2]}, "y": {"values": [10, 20]}}}


def unitb(tmp_path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unitb", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout)


def start_agent(tmp_path, ident: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "unitb", "sweep", "agent", ident, "--heartbeat", "1", *extra],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def make_sweep(tmp_path, name: str, config=None) -> str:
    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "sweep.json").write_text(json.dumps(config or GRID))
    made = unitb(tmp_path, "sweep", "create", "sweep.json", "--name", name)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def wait_for_slow_trial(folder, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pids in folder.glob("trial-*/pids.json"):
            args = json.load(open(pids.parent / ".unitb-trial-args.json"))
            if (args["x"], args["y"]) == (2, 20):
                return pids.parent, json.load(open(pids))
        time.sleep(0.05)
    raise AssertionError("the slow trial never started")


def rows(status: subprocess.CompletedProcess) -> str:
    """The trials' table of ``unitb sweep status`` (below its progress line)."""
    return status.stdout.split("\n", 1)[1]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_agent_killed_with_its_group_stops_its_trial_and_the_sweep_runs_it_again(tmp_path):
    """Journal storage (the default), two agents on one host: one is SIGKILLed with its process
    group mid-trial. Its trial (a session of its own) ends within seconds; the other agent does
    not call the grid done, fails the dead agent's trial naming it, and runs the combination."""
    ident = make_sweep(tmp_path, "dead")
    folder = tmp_path / "sweeps" / ident
    agents = [start_agent(tmp_path, ident) for _ in range(2)]
    trial_folder, pids = wait_for_slow_trial(folder)
    victim = next(agent for agent in agents if agent.pid == pids["agent"])
    os.killpg(os.getpgid(victim.pid), signal.SIGKILL) if os.getpgid(victim.pid) != os.getpgid(0) \
        else victim.kill()
    deadline = time.monotonic() + 5
    while not gone(pids["trial"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pids["trial"]), "the trial outlived its agent"
    victim.wait(10)
    survivor = next(agent for agent in agents if agent is not victim)
    out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    trials = sweep_study.find(ident, str(tmp_path / "sweeps")).study().get_trials()
    dead = next(t for t in trials if str(trial_folder).endswith(f"trial-{t.number:03d}"))
    assert dead.state.name == "FAIL"
    assert dead.user_attrs["unitb.error"].startswith(f"its agent (pid {pids['agent']} on ")
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.state.name == "COMPLETE" and retry.value == 43.0
    completed = sorted((t.params["x"], t.params["y"]) for t in trials if t.state.name == "COMPLETE")
    assert completed == [(1, 10), (1, 20), (2, 10), (2, 20)]
    # The grid was not called done while the dead agent's trial still counted as running.
    assert err.index(f"trial {dead.number}: failed — its agent") < err.index("every combination of the grid ran")
    status = unitb(tmp_path, "sweep", "status", ident)
    assert "running" not in rows(status)
    assert f"trial {dead.number}: its agent (pid {pids['agent']}" in status.stdout


def test_an_agent_killed_alone_leaves_a_trial_the_next_agent_fails_and_runs_again(tmp_path):
    """The only agent is SIGKILLed; its trial stops with it, status never shows it running, and
    an agent started again runs what is left, the dead trial's combination included."""
    ident = make_sweep(tmp_path, "alone")
    folder = tmp_path / "sweeps" / ident
    agent = start_agent(tmp_path, ident)
    trial_folder, pids = wait_for_slow_trial(folder)
    agent.send_signal(signal.SIGKILL)
    agent.wait(10)
    deadline = time.monotonic() + 5
    while not gone(pids["trial"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pids["trial"])
    status = unitb(tmp_path, "sweep", "status", ident)
    assert status.returncode == 0 and "running" not in rows(status)
    assert "is gone; the next agent fails it" in status.stdout
    again = start_agent(tmp_path, ident)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    trials = sweep_study.find(ident, str(tmp_path / "sweeps")).study().get_trials()
    completed = sorted((t.params["x"], t.params["y"]) for t in trials if t.state.name == "COMPLETE")
    assert completed == [(1, 10), (1, 20), (2, 10), (2, 20)]


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs unshare, as root")
def test_an_agent_on_another_host_is_found_dead_by_its_beat_in_the_journal(tmp_path):
    """Another host sharing the journal file, stood in for by a process namespace of its own (its
    pids mean nothing here): it dies whole (a lost node). The agent here cannot look at its pid;
    the beat it stopped moving tells, after three beats, and the combination runs again."""
    ident = make_sweep(tmp_path, "elsewhere")
    folder = tmp_path / "sweeps" / ident
    remote = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "unitb", "sweep",
                               "agent", ident, "--heartbeat", "1"], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trial_folder, _ = wait_for_slow_trial(folder)
    local = start_agent(tmp_path, ident)
    if not (trial_folder / "pids.json").exists() or json.load(open(trial_folder / "pids.json"))["agent"] > 10:
        pytest.skip("the slow trial went to this host's agent")  # pids in a new namespace start at 1
    os.killpg(remote.pid, signal.SIGKILL)  # the namespace's first process dies: every process in it does
    remote.wait(10)
    out, err = local.communicate(timeout=120)
    assert local.returncode == 0, err[-3000:]
    trials = sweep_study.find(ident, str(tmp_path / "sweeps")).study().get_trials()
    dead = next(t for t in trials if str(trial_folder).endswith(f"trial-{t.number:03d}"))
    assert dead.state.name == "FAIL"
    assert "has not beaten for 3 s: the host or the agent died" in dead.user_attrs["unitb.error"]
    completed = sorted((t.params["x"], t.params["y"]) for t in trials if t.state.name == "COMPLETE")
    assert completed == [(1, 10), (1, 20), (2, 10), (2, 20)]


def test_a_trial_another_agent_failed_runs_on_and_its_outcome_is_kept(tmp_path):
    """What an agent that took a live trial for dead does, done from outside: the trial is failed
    and its parameters queued again while it runs. Its agent goes on without a traceback, keeps
    what the trial did with the sweep, and runs the retry too."""
    ident = make_sweep(tmp_path, "taken")
    folder = tmp_path / "sweeps" / ident
    agent = start_agent(tmp_path, ident)
    trial_folder, _ = wait_for_slow_trial(folder)
    sweep = sweep_study.find(ident, str(tmp_path / "sweeps"))
    study = sweep.study()
    number = int(trial_folder.name.split("-")[1])
    trial = study.get_trials()[number]
    study._storage.set_trial_user_attr(trial._trial_id, "unitb.error", "taken for dead in a test")
    assert study._storage.set_trial_state_values(trial._trial_id, trial.state.FAIL)
    sweep_study.retry_elsewhere(1)(study, study._storage.get_trial(trial._trial_id))
    (folder / "fast").write_text("")  # the retry need not take as long
    out, err = agent.communicate(timeout=120)
    assert agent.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "an agent stopped" not in err
    assert f"trial {number} (x=2, y=20): another agent took it for dead" in err
    study = sweep.study()
    late = study.user_attrs[f"{LATE}{number}"]
    assert late["outcome"] == "it completed: val/score = 43 at step 3" and late["value"] == 43.0
    retry = next(t for t in study.get_trials() if t.system_attrs.get("failed_trial") == number)
    assert retry.state.name == "COMPLETE" and retry.value == 43.0
    status = unitb(tmp_path, "sweep", "status", ident)
    assert f"trial {number}: taken for dead in a test; yet it went on and it completed" in status.stdout


def _released_together(tmp_path, words, count: int = 2):
    """``count`` processes running ``unitb WORDS``, their Python started and waiting for one
    moment to run the command."""
    at = time.time() + 3.0
    started = [_start_at(tmp_path, at, words) for _ in range(count)]
    return [(p.wait(60), *p.communicate()) for p in started]


def _start_at(tmp_path, at: float, words) -> subprocess.Popen:
    script = ("import runpy, sys, time; time.sleep(max(0.0, float(sys.argv[1]) - time.time())); "
              "sys.argv = ['unitb', *sys.argv[2:]]; runpy.run_module('unitb', run_name='__main__')")
    return subprocess.Popen([sys.executable, "-c", script, str(at), *words], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("storage", ["journal", "postgres"])
def test_two_creates_of_one_name_one_wins_and_the_other_says_where_it_lives(tmp_path, storage, request):
    (tmp_path / "trial.py").write_text(TRIAL)
    (tmp_path / "sweep.json").write_text(json.dumps(GRID))
    for round_ in range(3):
        words = ["sweep", "create", "sweep.json", "--name", f"same{round_}"]
        if storage == "postgres":
            words += ["--storage", request.getfixturevalue("postgres").database(f"fresh{round_}")]
        results = sorted(_released_together(tmp_path, words))
        assert [code for code, _, _ in results] == [0, 2], results
        _, out, err = results[1]
        assert "Traceback" not in err and out == ""
        assert err.startswith(f"unitb sweep create: a sweep 'same{round_}' exists already in "), err
        assert len(err.strip().splitlines()) == 1
        if storage == "journal":
            assert str(tmp_path / "sweeps" / f"same{round_}") in err
    if storage == "postgres":  # two different sweeps meeting one empty database: one schema, both made
        url = request.getfixturevalue("postgres").database("empty")
        both = [_start_at(tmp_path, at, ["sweep", "create", "sweep.json", "--name", name, "--storage", url])
                for at in [time.time() + 3.0] for name in ("first", "second")]
        results = [(p.wait(60), *p.communicate()) for p in both]
        assert [code for code, _, _ in results] == [0, 0], results
        assert sorted(sweep_study.find(name, database=url).ident for name in ("first", "second")) == \
            ["first", "second"]


NONFINITE = textwrap.dedent('''
    import argparse, math, os, sys, time
    parser = argparse.ArgumentParser(); parser.add_argument("--mode"); mode = parser.parse_args().mode
    if mode == "torch_nan":  # unitb's TorchLogger leaves the NaN out of the run and tells the agent
        from torch_adapter import TorchLogger
        log = TorchLogger("not-used", log_speed=False, log_model_stats=False, log_train_images=False)
        for step in range(1, 30):
            log.log_step(step, loss=1.0)
            log.log_scalar("val/loss", 1.0 / step if step < 4 else float("nan"))
            time.sleep(0.05)
        log.close()
    else:  # a script of its own: TensorBoard's writer, an infinite last value
        sys.modules["tensorflow"] = None
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        writer = EventFileWriter(os.environ["UNITB_SWEEP_LOGDIR"])
        last = {"inf": math.inf, "ok": 0.5}[mode]
        for step, value in ((1, 2.0), (2, 1.0), (3, last)):
            summary = Summary(value=[Summary.Value(tag="val/loss", simple_value=value)])
            writer.add_event(Event(step=step, wall_time=time.time(), summary=summary))
        writer.close()
''')


def test_a_metric_that_turns_nan_or_infinite_fails_its_trial_at_that_step(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "trial.py").write_text(NONFINITE)
    (tmp_path / "sweep.yaml").write_text("program: trial.py\nmethod: grid\nmetric: {name: val/loss}\n"
                                         "parameters: {mode: {values: [torch_nan, inf, ok]}}\n")
    done = unitb(tmp_path, "sweep", "run", "sweep.yaml", "--name", "nf", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = {t.params["mode"]: t for t in sweep_study.find("nf", str(tmp_path / "sweeps")).study().get_trials()}
    assert trials["torch_nan"].state.name == "FAIL"
    assert trials["torch_nan"].user_attrs["unitb.error"] == "val/loss was NaN at step 4; the trial was stopped there"
    assert trials["inf"].state.name == "FAIL"
    assert trials["inf"].user_attrs["unitb.error"].startswith("val/loss was infinite at step 3")
    assert trials["ok"].state.name == "COMPLETE" and trials["ok"].value == 0.5  # the sweep went on
    assert "val/loss was NaN at step 4" in done.stdout  # the status table's note


def test_a_torn_journal_is_mended_and_a_torn_middle_is_named_and_repaired(tmp_path):
    ident = make_sweep(tmp_path, "torn", {**GRID, "parameters": {"x": {"values": [1]}, "y": {"values": [10, 20]}}})
    journal = tmp_path / "sweeps" / ident / SWEEP_JOURNAL
    done = unitb(tmp_path, "sweep", "agent", ident)
    assert done.returncode == 0, done.stderr
    whole = journal.read_bytes()
    # Half a record appended (a writer killed mid-append): set aside, named, every record kept.
    journal.write_bytes(whole + b'{"op_code":5,"worker_id":"x","trial_id":')
    status = unitb(tmp_path, "sweep", "status", ident)
    assert status.returncode == 0, status.stderr
    assert f"{journal} ended in a torn record (40 bytes from byte {len(whole)}" in status.stderr
    assert journal.read_bytes() == whole
    assert (tmp_path / "sweeps" / ident / f"{SWEEP_JOURNAL}.torn-{len(whole)}").read_bytes().startswith(b'{"op_code":5')
    assert "2 done, 0 running" in status.stdout and "running" not in rows(status)
    # The last record cut in the middle: the trial it finished is not shown as running.
    journal.write_bytes(whole[:-25])
    status = unitb(tmp_path, "sweep", "status", ident)
    assert status.returncode == 0 and "torn record" in status.stderr
    assert "0 running" in status.stdout and "running" not in rows(status)
    # A torn line with records after it: an error naming the file and the line, and what to do.
    journal.write_bytes(whole)
    lines = whole.split(b"\n")
    journal.write_bytes(b"\n".join([*lines[:3], lines[3][:20], *lines[4:]]))
    status = unitb(tmp_path, "sweep", "status", ident)
    assert status.returncode == 2 and "Traceback" not in status.stderr
    assert f"{journal}: line 4 (from byte " in status.stderr and f"unitb sweep repair {ident}" in status.stderr
    repaired = unitb(tmp_path, "sweep", "repair", ident)
    assert repaired.returncode == 0 and "set aside" in repaired.stdout
    assert unitb(tmp_path, "sweep", "status", ident).returncode == 0


NESTED_TRIAL = textwrap.dedent('''
    import argparse, ast, json, os, sys, time
    sys.modules["tensorflow"] = None
    import unitb
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    parser = argparse.ArgumentParser()  # as W&B's nested example parses its agent's arguments
    parser.add_argument("--optimizer", type=ast.literal_eval)
    parser.add_argument("--batch_size", type=int)
    args = parser.parse_args()
    assert unitb.sweep_params() == {"optimizer": args.optimizer, "batch_size": args.batch_size}
    writer = EventFileWriter(os.environ["UNITB_SWEEP_LOGDIR"])
    value = args.optimizer["lr"] * args.batch_size + args.optimizer["nadam"]["beta"]
    writer.add_event(Event(step=1, wall_time=time.time(),
                           summary=Summary(value=[Summary.Value(tag="loss", simple_value=value)])))
    writer.close()
''')


def test_wandbs_nested_and_quantized_parameters_reach_the_script_as_wandbs_agent_gives_them(tmp_path):
    (tmp_path / "trial.py").write_text(NESTED_TRIAL)
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent('''
        program: trial.py
        method: random
        run_cap: 2
        controller:
          type: local
        metric: {name: loss, goal: minimize, impute: worst}
        parameters:
          optimizer:
            parameters:
              lr: {values: [0.0001, 0.001]}
              nadam:
                parameters:
                  beta: {value: 0.9}
          batch_size: {distribution: q_uniform, min: 8, max: 32, q: 8}
    '''))
    done = unitb(tmp_path, "sweep", "run", "sweep.yaml", "--name", "nested", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("controller: local taken") == 1
    trials = sweep_study.find("nested", str(tmp_path / "sweeps")).study().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        args = json.load(open(tmp_path / "sweeps" / "nested" / f"trial-{trial.number:03d}" / ".unitb-trial-args.json"))
        assert args["optimizer"]["nadam"] == {"beta": 0.9} and args["batch_size"] in (8, 16, 24, 32)
        assert trial.value == pytest.approx(args["optimizer"]["lr"] * args["batch_size"] + 0.9)
