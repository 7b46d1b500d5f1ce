"""Getting an alert to people: the console, the run itself, a webhook and a command — and
keeping what could not be sent until it can be.

Every alert is written first into the run folder (``.unitb-alerts/<id>.json``, with where it
is to go), then sent, on a thread of its own: training never waits on a network or a command.
A webhook gets a Slack-compatible JSON POST (``{"text": ...}``); a command runs with the alert in
its environment (``UNITB_ALERT_TITLE``, ``_TEXT``, ``_LEVEL``, ``_RUN``, ``_STEP``, ``_RULE``), for
``mail``, a pager or ``sbatch --dependency``. What was delivered is marked so (``"sent": [...]``)
and never sent twice; what failed (no network on a compute node, an endpoint down, a command that
failed or hung) stays pending and goes with the next alert's attempt, or with
``unitb alerts send RUN`` from a machine that can reach it.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

from unitb.files import json_files
from unitb.files.names import ALERTS_FOLDER

LEVELS = ("info", "warning", "error")


@dataclass
class Alert:
    """One alert: what happened, where, and where it is to go."""

    title: str
    text: str
    level: str = "warning"
    rule: str = "user"
    run: str = ""
    step: int = 0
    time: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    webhook: Optional[str] = None
    command: Optional[str] = None
    sent: List[str] = field(default_factory=list)  # the channels that took it ("webhook", "command")

    def message(self) -> str:
        return f"[{self.level.upper()}] {self.title} — {self.text} (run {self.run}, step {self.step})"

    def due(self) -> List[str]:
        """The channels still to take it."""
        wanted = [name for name, where in (("webhook", self.webhook), ("command", self.command)) if where]
        return [name for name in wanted if name not in self.sent]


def _path(folder: str, alert: Alert) -> str:
    return os.path.join(folder, ALERTS_FOLDER, f"{int(alert.time):010d}-{alert.id}.json")


def keep(folder: str, alert: Alert) -> str:
    """Write the alert into the run folder (whole or not at all)."""
    path = _path(folder, alert)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json_files.write(path, asdict(alert))
    return path


def pending(folder: str) -> List[Alert]:
    """The run's alerts a channel has not taken yet, oldest first."""
    where = os.path.join(folder, ALERTS_FOLDER)
    try:
        names = sorted(name for name in os.listdir(where) if name.endswith(".json"))
    except OSError:
        return []
    found = []
    for name in names:
        data: Dict[str, Any] = json_files.read_dict(os.path.join(where, name))
        try:
            alert = Alert(**data)
        except TypeError:
            continue  # not an alert of ours
        if alert.due():
            found.append(alert)
    return found


def post_webhook(url: str, alert: Alert, timeout: float) -> None:
    """A Slack-compatible POST: ``{"text": ...}`` (Slack, Mattermost, Teams' and Discord's
    Slack-compatible endpoints, or a relay of your own); the alert's fields ride along."""
    body = json.dumps({"text": alert.message(), "unitb": asdict(alert)}).encode()
    import urllib.request  # only where an alert goes out: http.client is a tenth of unitb's start-up

    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        if not 200 <= answer.status < 300:
            raise OSError(f"the webhook answered {answer.status}")


def run_command(command: str, alert: Alert, timeout: float) -> None:
    environment = {**os.environ, "UNITB_ALERT_TITLE": alert.title, "UNITB_ALERT_TEXT": alert.text,
                   "UNITB_ALERT_LEVEL": alert.level, "UNITB_ALERT_RUN": alert.run,
                   "UNITB_ALERT_STEP": str(alert.step), "UNITB_ALERT_RULE": alert.rule}
    done = subprocess.run(shlex.split(command), env=environment, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        raise OSError(f"exited with code {done.returncode}" + (f": {tail}" if tail else ""))


def send(folder: str, alert: Alert, timeout: float, warn: Callable[[str], None]) -> bool:
    """Try every channel still due; record what took it. Returns whether none is left."""
    for channel in alert.due():
        try:
            if channel == "webhook":
                post_webhook(alert.webhook or "", alert, timeout)
            else:
                run_command(alert.command or "", alert, timeout)
        except Exception as exc:
            if (alert.id, channel) not in _WARNED:  # one warning an alert, however often it is tried
                _WARNED.add((alert.id, channel))
                warn(f"unitb: the alert '{alert.title}' did not reach its {channel} ({type(exc).__name__}: {exc}); "
                     f"it is kept in {os.path.join(folder, ALERTS_FOLDER)} and sent again with the next alert or "
                     f"by `unitb alerts send {folder}`")
            continue
        alert.sent.append(channel)
        keep(folder, alert)
    return not alert.due()


_SENDING = threading.Lock()  # one sender at a time in a process: nothing goes out twice
_WARNED: set = set()  # (alert id, channel) said undeliverable in this process


def send_pending(folder: str, timeout: float, warn: Callable[[str], None]) -> Dict[str, int]:
    """Send every pending alert of the run; ``{"sent": n, "left": m}``."""
    counts = {"sent": 0, "left": 0}
    with _SENDING:
        for alert in pending(folder):
            counts["sent" if send(folder, alert, timeout, warn) else "left"] += 1
    return counts


class Dispatcher:
    """Sends a run's alerts on a daemon thread, pending ones first, one attempt per alert."""

    def __init__(self, folder: str, timeout: float, warn: Callable[[str], None]) -> None:
        self.folder = folder
        self.timeout = timeout
        self._warn = warn
        self._threads: List[threading.Thread] = []

    def dispatch(self) -> None:
        thread = threading.Thread(target=send_pending, args=(self.folder, self.timeout, self._warn),
                                  name="unitb-alerts", daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def wait(self, seconds: float) -> None:
        """Give the sends under way up to ``seconds`` to finish (at close; never longer)."""
        deadline = time.monotonic() + seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
