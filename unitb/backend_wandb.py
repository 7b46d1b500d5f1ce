"""Weights & Biases as a unitb backend (see :mod:`unitb.backends` for the rules).

Every record is logged with ``step=`` the event's step, so W&B's x-axis is unitb's training
iteration. Scalars, images, histograms and text become history values under the same tags
(W&B groups its panels by the part before the first ``/``: the schema's families); the hparams
and the config go to ``run.config``. W&B is imported only when a run uses it.
"""
from __future__ import annotations

import html
import time
import uuid
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from unitb.backend_points import PointErrors, histogram_of, hparams_of, image_of

OWNER = "unitb"
MAX_BINS = 512  # wandb.Histogram refuses more


class WandbBackend(PointErrors):
    name = "wandb"
    in_order = True  # run.log(step=) drops a step lower than the last one

    def __init__(self, options: Mapping[str, object], warn: Callable[[str], None]):
        super().__init__(warn)
        self.options = dict(options)
        self.run = None
        self.run_id: Optional[str] = None
        self.project: Optional[str] = None

    def open(self, state: Dict[str, object], start_step: int, run_name: str) -> int:
        kwargs = {key: self.options[key] for key in ("entity", "group", "tags", "notes", "dir", "mode")
                  if key in self.options}
        self.project = str(self.options.get("project") or state.get("project") or OWNER)
        kwargs.update(project=self.project, name=self.options.get("name") or run_name, reinit="create_new")
        old = state.get("id") if isinstance(state.get("id"), str) else None
        sent = int(state.get("sent_step", -1)) if isinstance(state.get("sent_step"), int) else -1
        if old and sent <= start_step:  # nothing after the resume point was sent: go on where it stopped
            self.run = self._init(kwargs, id=old, resume="allow")
            self.run_id = old
            return sent
        if old:  # steps after start_step were sent: rewind the run to it, or fork it there
            for how in ("resume_from", "fork_from"):
                try:
                    self.run = self._init(kwargs, **{how: f"{old}?_step={start_step}"})
                except Exception as exc:
                    self._warn(f"unitb: W&B refused {how}={old}?_step={start_step} ({type(exc).__name__}: {exc})")
                    continue
                self.run_id = self.run.id
                return start_step
            self._warn(f"unitb: the W&B run {old} holds steps after {start_step}; a new W&B run gets this one")
        self.run = self._init(kwargs, id=uuid.uuid4().hex[:12])
        self.run_id = self.run.id
        return -1

    @staticmethod
    def _init(kwargs: Mapping[str, object], **how: object):
        """``wandb.init`` with its own ``Settings``: ``wandb.init`` writes ``resume_from`` /
        ``fork_from`` into the settings it is given, so one object shared by the attempts above
        made every fallback fail as "mutually exclusive"."""
        import wandb

        return wandb.init(**how, **kwargs, settings=wandb.Settings(console="off", silent=True))

    def send(self, steps: List[Tuple[int, List[tuple]]]) -> None:
        for step, points in steps:
            self._send_step(step, points)
            time.sleep(0)  # hand the GIL back: training waits at most one step's conversion, not 5 ms

    def _send_step(self, step: int, points: List[tuple]) -> None:
        import wandb

        row: Dict[str, object] = {}
        for tag, kind, value in points:
            with self._skipped_on_error(tag, kind):
                if kind == "scalar":
                    row[tag] = value
                elif kind == "image" and value:
                    row[tag] = wandb.Image(image_of(value))
                elif kind == "histogram" and value is not None and len(value):
                    counts, edges = histogram_of(value, MAX_BINS)
                    row[tag] = wandb.Histogram(np_histogram=(counts, edges))
                elif kind == "text" and isinstance(value, str):
                    row[tag] = wandb.Html(f"<pre>{html.escape(value)}</pre>")
                elif kind == "hparams":
                    values = hparams_of(value)
                    if values:
                        self.run.config.update(values, allow_val_change=True)
        if row:
            self.run.log(row, step=step)

    def state(self) -> Dict[str, object]:
        return {"id": self.run_id, "project": self.project}

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
