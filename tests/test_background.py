"""The background writer: order, queue-full policy, flush on close / exit / SIGTERM."""
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np

from event_sink import EventFileSink
from unitb import reader
from unitb.write.writer import RunLogger
from unitb.notices import UnitbWarning

TESTS = os.path.dirname(os.path.abspath(__file__))


def test_async_writes_keep_order_and_land_on_flush(tmp_path):
    run = RunLogger(EventFileSink(str(tmp_path), delay=0.001))
    for step in range(1, 201):
        run.scalar("train/loss", 1.0 / step, step)
        run.histograms(lambda layer: f"weights/{layer}", step, {"a": np.arange(3.0) + step})
    run.flush()
    assert [s for s, _ in reader.scalars(str(tmp_path))["train/loss"]] == list(range(1, 201))
    assert [r.step for r in reader.read_run(str(tmp_path)) if r.tag == "weights/a"] == list(range(1, 201))
    run.close()


def test_a_full_queue_drops_heavy_records_with_a_count_but_never_scalars(tmp_path):
    run = RunLogger(EventFileSink(str(tmp_path), delay=0.02), max_log_mb=None)
    run.background._queue.maxsize = 4  # a disk that cannot keep up
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 41):
            run.histograms(lambda layer: f"weights/{layer}", step, {"a": np.arange(10.0)})
            run.scalar("train/loss", float(step), step)
        run.flush()
    run.close()
    scalars = reader.scalars(str(tmp_path))["train/loss"]
    assert [s for s, _ in scalars] == list(range(1, 41))  # every scalar written
    assert run.background.dropped["heavy"] > 0 and run.background.dropped["light"] == 0
    hist_steps = [r.step for r in reader.read_run(str(tmp_path)) if r.tag == "weights/a"]
    assert len(hist_steps) == 40 - run.background.dropped["heavy"]
    messages = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning)]
    assert len([m for m in messages if "queue is full" in m]) == 1  # one warning, with a count


SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {tests!r})
    import numpy as np
    from event_sink import EventFileSink
    from unitb.write.writer import RunLogger
    run = RunLogger(EventFileSink(sys.argv[1], delay=0.001), flush_secs=float(sys.argv[3]))
    for step in range(1, 101):
        run.scalar("train/loss", float(step), step)
        run.histograms(lambda layer: "weights/" + layer, step, {{"a": np.arange(3.0)}})
    if sys.argv[2] == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    elif sys.argv[2] == "exit":
        sys.exit(0)
    elif sys.argv[2] == "sigkill-after-flush-interval":
        time.sleep(float(sys.argv[3]) + 1.5)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
""")


def _run(tmp_path, mode, flush_secs="5"):
    return subprocess.run([sys.executable, "-c", SCRIPT.format(tests=TESTS), str(tmp_path), mode, flush_secs],
                          capture_output=True, text=True, timeout=120)


def test_sigterm_flushes_everything_queued(tmp_path):
    out = _run(tmp_path, "sigterm")
    assert out.returncode == -signal.SIGTERM
    assert [s for s, _ in reader.scalars(str(tmp_path))["train/loss"]] == list(range(1, 101))
    assert [r.step for r in reader.read_run(str(tmp_path)) if r.tag == "weights/a"] == list(range(1, 101))


def test_interpreter_exit_flushes_everything_queued(tmp_path):
    out = _run(tmp_path, "exit")
    assert out.returncode == 0, out.stderr
    assert len(reader.scalars(str(tmp_path))["train/loss"]) == 100
    assert len([r for r in reader.read_run(str(tmp_path)) if r.tag == "weights/a"]) == 100


def test_a_hard_crash_loses_at_most_one_flush_interval(tmp_path):
    out = _run(tmp_path, "sigkill-after-flush-interval", flush_secs="1")
    assert out.returncode == -signal.SIGKILL
    assert len(reader.scalars(str(tmp_path))["train/loss"]) == 100  # flushed by the periodic flush
