"""A resume never shares its run folder with a live writer: not with the interrupted job that
is not dead yet (a preempted process still running, a frozen node that wakes up), and not with
a second resume of the same run started at the same moment. Real processes, SIGSTOP/SIGKILL,
the event files read back."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from unitb import reader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "resume_writer.py")


def _start(kind, logdir, start, base, steps, wait, mark, later=None, env=None):
    args = [sys.executable, SCRIPT, kind, logdir, str(start), str(base), str(steps[0]), str(steps[1]),
            str(wait), str(mark)] + ([str(later[0]), str(later[1])] if later else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _wait_for_file(path, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _losses(folder):
    return reader.scalars(folder)["train/loss"]


@pytest.mark.parametrize("kind", ["torch", "tfloop", "keras"])
def test_a_resume_waits_for_a_frozen_writer_then_refuses_and_never_mixes_points(tmp_path, kind):
    logdir = str(tmp_path / "exp")
    old = _start(kind, logdir, 0, 1000, (1, 25), 60, tmp_path / "old", later=(26, 40))
    _wait_for_file(f"{tmp_path / 'old'}.flushed", old)
    os.kill(old.pid, signal.SIGSTOP)  # a frozen node: the process lives, its lock with it
    try:
        began = time.monotonic()
        new = _start(kind, logdir, 20, 2000, (21, 40), 1.5, tmp_path / "new")
        out, err = new.communicate(timeout=180)
        waited = time.monotonic() - began
    finally:
        os.kill(old.pid, signal.SIGCONT)
    if kind == "torch":  # TorchLogger opens the folder at construction: a clear error there
        assert new.returncode == 3, err[-3000:]
        assert "busy:" in out and f"pid {old.pid}" in out and "resume_wait" in out
    else:  # TFLogger / TFCallback open it inside training: one warning, training goes on without logging
        assert new.returncode == 0, err[-3000:]
        assert err.count("cannot resume in") == 1 and f"pid {old.pid}" in err and "logging is off" in err
    assert waited >= 1.5
    assert "Traceback" not in err
    (tmp_path / "old.go").write_text("go")  # the frozen job wakes up and finishes its run
    _out, old_err = old.communicate(timeout=180)
    assert old.returncode == 0, old_err[-3000:]
    # The old job's curve is whole and untouched: nothing of the refused resume in it.
    before = _losses(logdir)
    assert [s for s, _ in before] == list(range(1, 41))
    if kind != "keras":  # Keras logs its own loss; the others log the job's mark
        assert before == [(s, 1000.0 + s) for s in range(1, 41)]
    # Once it is gone, the same resume goes through: one curve, each step once.
    again = _start(kind, logdir, 20, 2000, (21, 40), 1.5, tmp_path / "again")
    _out, err = again.communicate(timeout=180)
    assert again.returncode == 0, err[-3000:]
    after = _losses(logdir)
    assert [s for s, _ in after] == list(range(1, 41)) and after[:20] == before[:20]
    if kind != "keras":
        assert after[20:] == [(s, 2000.0 + s) for s in range(21, 41)]


def test_two_resumes_released_together_one_resumes_the_other_is_refused(tmp_path):
    logdir = str(tmp_path / "exp")
    old = _start("torch", logdir, 0, 1000, (1, 30), 60, tmp_path / "old", later=(31, 40))
    _wait_for_file(f"{tmp_path / 'old'}.flushed", old)
    os.kill(old.pid, signal.SIGKILL)  # preempted: its lock dies with it
    old.communicate(timeout=60)
    go = tmp_path / "GO"
    jobs = {base: _start("torch", logdir, 20, base, (21, 30), 3, tmp_path / f"job{base}", later=(31, 40),
                         env={"RESUME_GO": str(go)}) for base in (2000, 3000)}
    deadline = time.monotonic() + 180
    while len([n for n in os.listdir(tmp_path) if n.startswith("GO.ready-")]) < 2:
        assert time.monotonic() < deadline and all(p.poll() is None for p in jobs.values())
        time.sleep(0.02)
    go.write_text("go")
    # The one that lost the claim waits resume_wait, then gets the clear error.
    deadline = time.monotonic() + 180
    while all(p.poll() is None for p in jobs.values()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    loser = next(base for base, p in jobs.items() if p.poll() is not None)
    winner = 5000 - loser
    out, err = jobs[loser].communicate(timeout=60)
    assert jobs[loser].returncode == 3, err[-3000:]
    assert "busy:" in out and "Traceback" not in err
    (tmp_path / f"job{winner}.go").write_text("go")
    out, err = jobs[winner].communicate(timeout=180)
    assert jobs[winner].returncode == 0 and "Traceback" not in err, err[-3000:]
    assert _losses(logdir) == [(s, 1000.0 + s) for s in range(1, 21)] + [(s, winner + s) for s in range(21, 41)]
