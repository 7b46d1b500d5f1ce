"""A sweep's trial script for the agent tests, not unitb's: TensorBoard's own writer (its
pure-Python file layer: no TensorFlow import time), the metric ``val/score`` = x * y + step at
steps 1..3. It leaves its pid and its agent's in its folder (``pids.json``). One combination is
slow — each step takes ``seconds`` — unless a file ``fast`` stands in the sweep's folder (a test
that wants a retry to be quick); the others take a moment."""
from __future__ import annotations

import textwrap
from typing import Tuple

_SCRIPT = textwrap.dedent('''
    import argparse, json, os, sys, time
    sys.modules["tensorflow"] = None
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=int); parser.add_argument("--y", type=int)
    args = parser.parse_args()
    folder = os.environ["UNITB_SWEEP_LOGDIR"]
    with open(os.path.join(folder, "pids.json"), "w") as handle:
        json.dump({"trial": os.getpid(), "agent": os.getppid()}, handle)
    writer = EventFileWriter(folder)
    slow = (args.x, args.y) == SLOW and not os.path.exists(os.path.join(folder, "..", "fast"))
    for step in (1, 2, 3):
        time.sleep(SECONDS if slow else QUICK)
        summary = Summary(value=[Summary.Value(tag="val/score", simple_value=args.x * args.y + step)])
        writer.add_event(Event(step=step, wall_time=time.time(), summary=summary))
        writer.flush()
    writer.close()
''')


def grid_trial(slow: Tuple[int, int], seconds: float, quick: float = 0.2) -> str:
    """The script's text, with combination ``slow`` taking ``seconds`` a step (others ``quick``)."""
    return (_SCRIPT.replace("SLOW", repr(tuple(slow))).replace("SECONDS", repr(float(seconds)))
            .replace("QUICK", repr(float(quick))))
