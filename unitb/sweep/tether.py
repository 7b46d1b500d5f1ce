"""A trial's process ends with its agent, even when the agent is killed outright.

A trial runs in a session of its own (so a Ctrl-C meant for the agent reaches it only as the
agent's clean stop), which also means nothing stops it when the agent dies: on a cluster an
orphan keeps its GPU. On Linux the kernel sends the trial SIGTERM the moment its agent dies
(``PR_SET_PDEATHSIG``), whatever killed the agent — SIGKILL and the OOM killer included. SIGTERM
is the signal a prune sends: unitb's entry points write what is queued and the run stays whole
up to there. Elsewhere the trial outlives a killed agent, and the next agent fails it.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable, Optional

_PR_SET_PDEATHSIG = 1


def _prctl() -> Optional[Callable[..., int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def tethered() -> Optional[Callable[[], None]]:
    """The ``preexec_fn`` that ties a child to this process: it gets SIGTERM when this process
    dies (None where the system cannot). Everything it needs is looked up before the fork."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def tie() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the agent died between the fork and the tie
            os.kill(os.getpid(), signal.SIGTERM)

    return tie
