"""Alerts: a word to the team when a run goes wrong, once per episode, even from a cluster
without internet.

The rules (each on unless its setting turns it off), turned on by ``alerts=`` on every entry
point (``True`` for the defaults, or a dict of :class:`AlertOptions`' fields):

- **nonfinite**: a NaN or Inf loss or gradient norm; again only after a finite loss;
- **diverged**: after ``diverge_after`` steps, a loss above ``diverge_factor`` times the lowest
  loss since then (the run's best so far: a loss that grows tenfold from its best is rarely
  noise, and the warm-up's first losses are left out because they fall fast and far); again
  only after the loss came back under that line;
- **stalled**: no training step for ``stall_minutes`` (a stuck collective, a dead data loader):
  noticed by a thread of its own, the training thread is not needed; again after a step;
- **gpu_memory**: a GPU of this process above ``gpu_memory_percent`` of its memory (read by the
  ``system/*`` sampler); again after it went 5 points below;
- and :func:`alert` for a team's own conditions (W&B's ``run.alert``).

An alert goes to the console (a warning), to the run itself (a TEXT entry ``alerts/{rule}`` at
its step, so it stays with the run) and to the webhook and command given
(:mod:`unitb.life.alert_delivery`); what cannot be delivered is kept and sent later. Only the
process that writes the run raises alerts.
"""
from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Tuple

from unitb import schema
from unitb.life.alert_delivery import LEVELS, Alert, Dispatcher, keep
from unitb.life.policy import check_non_negative
from unitb.write import protos

WATCHED_NONFINITE = (schema.TRAIN_LOSS, schema.GRAD_NORM_GLOBAL)


@dataclass
class AlertOptions:
    """Where alerts go and when the rules fire (``alerts=dict(...)``)."""

    webhook: Optional[str] = None
    """A URL that takes a Slack-compatible JSON POST (``{"text": ...}``)."""
    command: Optional[str] = None
    """A command run with the alert in its environment (``UNITB_ALERT_TITLE``, ``_TEXT``, ``_LEVEL``…)."""
    nonfinite: bool = True
    """Alert on a NaN or Inf loss or gradient norm."""
    diverge_factor: float = 10.0
    """Alert when the loss exceeds this many times its lowest value since ``diverge_after`` (0: off)."""
    diverge_after: int = 100
    """Steps of warm-up before the divergence rule watches."""
    stall_minutes: float = 30.0
    """Alert when no training step came for this long (0: off)."""
    gpu_memory_percent: float = 95.0
    """Alert when a GPU of this process uses more of its memory than this (0: off)."""
    timeout: float = 10.0
    """Seconds one delivery (a POST, a command) may take before it counts as failed and is kept."""

    def __post_init__(self) -> None:
        if self.webhook is not None and (not isinstance(self.webhook, str)
                                         or not self.webhook.startswith(("http://", "https://"))):
            raise ValueError(f"alerts: webhook must be an http(s) URL, got {self.webhook!r}")
        if self.command is not None and (not isinstance(self.command, str) or not self.command.strip()):
            raise ValueError(f"alerts: command must be a command line, got {self.command!r}")
        if not isinstance(self.nonfinite, bool):
            raise ValueError(f"alerts: nonfinite must be True or False, got {self.nonfinite!r}")
        for name in ("diverge_factor", "stall_minutes", "gpu_memory_percent", "timeout"):
            check_non_negative(f"alerts: {name}", getattr(self, name))
        if self.diverge_factor and self.diverge_factor <= 1:
            raise ValueError(f"alerts: diverge_factor must be above 1 (or 0: off), got {self.diverge_factor!r}")
        if self.timeout <= 0:
            raise ValueError(f"alerts: timeout must be positive, got {self.timeout!r}")
        if isinstance(self.diverge_after, bool) or not isinstance(self.diverge_after, int) or self.diverge_after < 0:
            raise ValueError(f"alerts: diverge_after must be a non-negative int, got {self.diverge_after!r}")


def check_alerts(value: Any) -> Optional[AlertOptions]:
    """``alerts=``: None or False (off), True (the defaults), a dict of :class:`AlertOptions`' fields."""
    if value is None or value is False:
        return None
    if value is True:
        return AlertOptions()
    if isinstance(value, AlertOptions):
        return value
    if isinstance(value, dict):
        known = {f.name for f in fields(AlertOptions)}
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(known))}"
                raise ValueError(f"alerts got an unknown key {key!r}{hint}")
        return AlertOptions(**value)
    raise ValueError(f"alerts must be True, False, None or a dict of settings, got {value!r}")


_MONITORS: List["AlertMonitor"] = []  # the open runs' monitors, newest last (for unitb.alert)


class AlertMonitor:
    """Watches one run: its values (told by the run's writer), its steps (a thread of its own)
    and its GPUs (told by the sampler); raises each rule's alert once per episode."""

    def __init__(self, options: AlertOptions, folder: str, target: Callable[[], Tuple[Optional[Any], int]],
                 warn: Callable[[str], None]) -> None:
        self.options = options
        self.folder = folder
        self._target = target
        self._warn = warn
        self._active: Dict[str, bool] = {}  # rule (or rule:detail) -> in an episode
        self._lowest: Optional[float] = None
        self._dispatcher = Dispatcher(folder, options.timeout, warn)
        self._stop = threading.Event()
        self._last_step: Optional[int] = None
        self._last_change = time.monotonic()
        self.raised: List[Alert] = []
        self._thread: Optional[threading.Thread] = None
        if options.stall_minutes:
            self._thread = threading.Thread(target=self._watch_steps, name="unitb-alerts-stall", daemon=True)
            self._thread.start()
        _MONITORS.append(self)
        if options.webhook or options.command:
            self._dispatcher.dispatch()  # what an earlier process of this run could not send

    # ------------------------------------------------------------------ raising
    def raise_alert(self, rule: str, title: str, text: str, level: str = "warning",
                    step: Optional[int] = None) -> Alert:
        """Tell everyone it goes to: the console, the run, the webhook and the command."""
        run, current = self._target()
        alert = Alert(title=title, text=text, level=level, rule=rule, run=self.folder,
                      step=int(current if step is None else step), webhook=self.options.webhook,
                      command=self.options.command)
        self.raised.append(alert)
        self._warn(f"unitb: alert: {alert.message()}")
        if run is not None:
            markdown = f"**{level.upper()}: {title}**\n\n{text}"
            tag = f"alerts/{rule}"
            run.write("text", lambda: run.sink.write_summary(protos.text_summary(tag, markdown), alert.step))
        try:
            keep(self.folder, alert)
        except OSError as exc:
            self._warn(f"unitb: could not keep the alert in {self.folder} ({exc})")
            return alert
        if alert.due():
            self._dispatcher.dispatch()
        return alert

    def _episode(self, key: str, happening: bool) -> bool:
        """Whether an episode of ``key`` starts now (it was not happening before)."""
        before = self._active.get(key, False)
        self._active[key] = happening
        return happening and not before

    # ------------------------------------------------------------------ the rules
    def on_nonfinite(self, tag: str, value: float, step: int) -> None:
        if self.options.nonfinite and (tag in WATCHED_NONFINITE or tag.startswith("train/loss/")):
            if self._episode("nonfinite", True):
                self.raise_alert("nonfinite", f"{tag} is {value}", f"{tag} was {value} at step {step}.",
                                 "error", step)

    def on_scalar(self, tag: str, value: float, step: int) -> None:
        """A finite scalar was written: the loss ends a non-finite episode and feeds divergence."""
        if tag != schema.TRAIN_LOSS:
            return
        self._episode("nonfinite", False)
        factor = self.options.diverge_factor
        if not factor or step <= self.options.diverge_after:
            return
        if self._lowest is None or value < self._lowest:
            self._lowest = value
        line = factor * self._lowest
        diverged = self._lowest > 0 and value > line
        if self._episode("diverged", diverged):
            self.raise_alert("diverged", f"train/loss diverged: {value:.4g}",
                             f"train/loss was {value:.4g} at step {step}, above {factor:g} times its lowest "
                             f"since step {self.options.diverge_after} ({self._lowest:.4g}).", "error", step)

    def on_system(self, values: Dict[str, float], step: int) -> None:
        """The sampler's figures: a GPU close to full memory."""
        limit = self.options.gpu_memory_percent
        if not limit:
            return
        for tag, used in values.items():
            if not tag.endswith("/memory_used_mb"):
                continue
            total = values.get(tag.replace("memory_used_mb", "memory_total_mb"))
            if not total:
                continue
            percent = 100.0 * used / total
            key = "gpu_memory:" + tag
            if self._active.get(key) and percent >= limit - 5:
                continue  # still in the episode
            if self._episode(key, percent >= limit):
                gpu = tag.split("/")[2]
                self.raise_alert("gpu_memory", f"GPU {gpu} at {percent:.0f} % of its memory",
                                 f"cuda:{gpu} used {used:.0f} of {total:.0f} MB at step {step}.", "warning", step)

    def _watch_steps(self) -> None:
        stall = self.options.stall_minutes * 60.0
        while not self._stop.wait(min(stall / 4.0, 30.0)):
            _run, step = self._target()
            now = time.monotonic()
            if step != self._last_step:
                self._last_step, self._last_change = step, now
                self._episode("stalled", False)
            elif now - self._last_change >= stall and self._episode("stalled", True):
                minutes = (now - self._last_change) / 60.0
                self.raise_alert("stalled", f"no training step for {minutes:.1f} min",
                                 f"The run stands at step {step}: no step came for {minutes:.1f} minutes "
                                 "(a hang: a collective, a data loader?).", "error", step)

    def close(self) -> None:
        """Stop watching; give the sends under way their ``timeout`` (and a moment to stop a
        command that ran out of it) to finish: what is left stays kept."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._dispatcher.wait(self.options.timeout + 2.0)
        if self in _MONITORS:
            _MONITORS.remove(self)


def alert(title: str, text: str = "", level: str = "warning") -> Optional[Alert]:
    """Raise your own alert on the newest open run with ``alerts=`` on (W&B's ``run.alert``).

    Args:
        title: One line.
        text: What happened, in Markdown.
        level: ``"info"``, ``"warning"`` or ``"error"``.

    Returns:
        The alert, or None when no open run of this process has alerts on (it is then only
        printed).

    Raises:
        ValueError: ``level`` is none of the three.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if not _MONITORS:
        from unitb.notices import default_warn

        default_warn(f"unitb: alert (no run with alerts on): [{level.upper()}] {title} — {text}")
        return None
    return _MONITORS[-1].raise_alert("user", title, text, level)
