"""Whether a run is running, finished or crashed, from what its folder says.

A writer that closes leaves ``.unitb-ended.json`` (:func:`unitb.life.opening.mark_ended`); the next
writer into the folder removes it. So a local run with the mark finished (a copy, ``cp`` or ``unitb
pull``, keeps the mark whatever times the copy gives the files). In a store, where a resumed run's
upload may leave the earlier mark behind for a while, the mark counts while no event file was
uploaded after it.
Without it, the run is running while its writer lives: on this machine the claim names the
writer's process, which is asked directly; elsewhere (another node, a store) a run that wrote in
the last ``QUIET_SECONDS`` is taken as running. Anything else ended without closing: crashed.
A folder unitb did not write (no claim, no mark) is ``unknown``.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Optional

from unitb.files.names import CLAIM, ENDED

RUNNING, FINISHED, CRASHED, UNKNOWN = "running", "finished", "crashed", "unknown"
QUIET_SECONDS = 15 * 60.0  # a writer on another machine that wrote this recently counts as live
SLACK_SECONDS = 5.0  # a store's upload of the last event file and of the mark, in the same sync


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _claimant(folder: str) -> Optional[dict]:
    try:
        with open(os.path.join(folder, CLAIM), "rb") as handle:
            who = json.loads(handle.read(4096) or b"{}")
    except (OSError, ValueError):
        return None
    return who if isinstance(who, dict) else None


def local_status(folder: str, last_write: float, now: Optional[float] = None) -> str:
    """The status of a run folder on this machine's file system; ``last_write``: the newest
    event file's modification time."""
    if os.path.exists(os.path.join(folder, ENDED)):
        return FINISHED
    who = _claimant(folder)
    if who is None:
        return UNKNOWN
    if who.get("host") == socket.gethostname() and isinstance(who.get("pid"), int):
        return RUNNING if _process_alive(who["pid"]) else CRASHED
    return _by_recency(last_write, now)


def store_status(ended: Optional[float], last_write: float, now: Optional[float] = None) -> str:
    """The status of a run in a store: the end mark's upload time (None: no mark) against its
    newest event file's."""
    if ended is not None and ended + SLACK_SECONDS >= last_write:
        return FINISHED
    return _by_recency(last_write, now)


def _by_recency(last_write: float, now: Optional[float]) -> str:
    return RUNNING if (now if now is not None else time.time()) - last_write <= QUIET_SECONDS else CRASHED
