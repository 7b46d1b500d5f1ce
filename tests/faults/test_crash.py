"""SIGKILL a real Keras fit mid-run: the run stays readable, at most one flush interval is lost."""
import os
import signal
import subprocess
import sys
import time

from unitb import reader

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "examples")
FLUSH_SECS = 5.0  # RunLogger's default flush interval


def test_sigkill_mid_fit_leaves_a_readable_run_missing_at_most_one_flush_interval(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, "keras_fit.py"), "--out", str(tmp_path),
                             "--steps", "5000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    run_dir = str(tmp_path / "keras-fit")
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until training has logged for a while
            rows = reader.read_run(run_dir) if os.path.isdir(run_dir) else []
            if len([r for r in rows if r.tag == "train/loss"]) > 30:
                break
            time.sleep(0.5)
        time.sleep(FLUSH_SECS + 2)
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    rows = reader.read_run(run_dir)  # no exception: a torn tail is skipped
    steps = [r.step for r in rows if r.tag == "train/loss"]
    assert steps and steps == sorted(set(steps))
    newest = max(r.wall_time for r in rows if r.tag == "train/loss")
    assert newest >= killed_at - FLUSH_SECS - 3.0  # lost at most one flush interval (+ scheduling slack)
    acc = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    acc.Reload()
    assert [e.step for e in acc.Tensors("train/loss")] == steps
