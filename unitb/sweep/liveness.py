"""Whether the agent that runs a trial is still alive, without asking it.

Each agent marks the trial it runs with who it is: its host, its pid and the moment the process
started. Another agent on the same host then knows at once whether that agent lives — a pid
that no longer exists, or that now belongs to a younger process, is a dead agent — whatever the
storage. An agent on another host cannot look, so it watches the trial's beat instead: a counter
the running agent moves every heartbeat (Optuna's own heartbeat in a database; a trial attribute
in a journal file, which has none). A beat that has not moved for three heartbeats, as this
agent's own clock measures (hosts' clocks may disagree), is a dead agent.

"The same host" means the same machine, boot and process namespace: two containers sharing a
hostname do not see each other's pids, and a machine that rebooted has none of its old ones.
"""
from __future__ import annotations

import functools
import os
import socket
import time
from typing import Any, Dict, Mapping, Optional, Tuple

AGENT_ATTR = "unitb.agent"  # trial system attribute: who runs it
BEAT_ATTR = "unitb.beat"  # trial system attribute: the journal's heartbeat counter


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def host_key() -> str:
    """This machine, boot and pid namespace, as one string (the hostname alone where Linux's
    boot id and namespaces are not to be read)."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return "/".join(part for part in (socket.gethostname(), boot, namespace) if part)


def started(pid: int) -> Optional[float]:
    """When process ``pid`` started, in clock ticks since boot (Linux), or None where it does not
    exist or this cannot be read."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: fields follow its last ')'
        return float(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def mark() -> Dict[str, Any]:
    """Who this agent is, kept with the trial it runs."""
    return {"host": host_key(), "pid": os.getpid(), "started": started(os.getpid()),
            "hostname": socket.gethostname()}


def on_this_host(who: Mapping[str, Any]) -> bool:
    return who.get("host") == host_key()


def alive(who: Mapping[str, Any]) -> bool:
    """Whether the agent ``who`` (a :func:`mark` from this host) still runs."""
    pid = who.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True  # not a mark this code wrote: never taken for dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    then, now = who.get("started"), started(pid)
    return then is None or now is None or then == now  # a reused pid is another process


def describe(who: Mapping[str, Any]) -> str:
    return f"pid {who.get('pid')} on {who.get('hostname') or 'its host'}"


class BeatWatch:
    """A trial's beats as this agent sees them: a beat that has not moved for ``grace`` seconds
    of this agent's own watching is a dead agent."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._seen: Dict[int, Tuple[Any, float]] = {}  # trial id -> (last beat, when it last moved)

    def stale(self, trial_id: int, beat: Any, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
        last = self._seen.get(trial_id)
        if last is None or last[0] != beat:
            self._seen[trial_id] = (beat, now)
            return False
        return now - last[1] >= self.grace

    def restart(self) -> None:
        """Forget what was seen: after this agent lost the storage, nobody's beats could move."""
        self._seen.clear()
