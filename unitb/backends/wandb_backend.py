"""Weights & Biases as a unitb backend (see :mod:`unitb.backends.forwarder` for the rules).

Every record is logged with ``step=`` the event's step, so W&B's x-axis is unitb's training
iteration. Scalars, images, histograms and text become history values under the same tags
(W&B groups its panels by the part before the first ``/``: the schema's families); the hparams
and the config go to ``run.config``. W&B is imported only when a run uses it.

``run.log`` returning does not mean W&B holds the row: its service writes the run's
transaction log (``run-<id>.wandb``, online and offline alike) a moment later, and a process
killed in between leaves rows that are nowhere. So a resume does not trust the steps unitb
handed over; it reads the interrupted run's transaction log (:func:`logged_steps`, the one
place that knows that file's framing, checked with wandb :data:`CHECKED_VERSIONS`) and sends
again, from the run folder, every step after the last one W&B really has.
"""
from __future__ import annotations

import html
import os
import re
import struct
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from unitb.backends.base import Backend, register_backend
from unitb.backends.points import histogram_of, image_of
from unitb.read.run_reader import session_values

OWNER = "unitb"
MAX_BINS = 512  # wandb.Histogram refuses more
CHECKED_VERSIONS = ("0.31.0",)
_BLOCK = 32768  # the transaction log is LevelDB's log format: 7-byte chunk headers in 32 KiB blocks
_MAGIC = b":W&B"


def run_id(name: str) -> str:
    """A new W&B run id that starts with the run's name, so W&B's folders
    (``offline-run-<time>-<id>``) say which run each is; a random tail keeps it unique."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:40]
    return f"{slug}-{uuid.uuid4().hex[:8]}" if slug else uuid.uuid4().hex[:12]


def log_records(path: str) -> Iterator[bytes]:
    """The records of a W&B transaction log, whole; a torn tail ends it."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != _MAGIC:
        raise ValueError(f"{path} is not a W&B transaction log")
    pos, pieces = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        if len(chunk) < length:
            return
        pos += 7 + length
        if kind == 1:  # FULL
            yield chunk
        elif kind == 2:  # FIRST
            pieces = chunk
        elif kind == 3:  # MIDDLE
            pieces += chunk
        elif kind == 4:  # LAST
            yield pieces + chunk
            pieces = b""


def logged_steps(path: Optional[str]) -> Optional[int]:
    """The highest step of the history rows W&B wrote into its transaction log at ``path``
    (-1: none); None when the file cannot be read (another machine's run, another format)."""
    if not path or not os.path.isfile(path):
        return None
    try:
        import json

        from wandb.proto import wandb_internal_pb2

        highest = -1
        for data in log_records(path):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]
            record.ParseFromString(data)
            if record.WhichOneof("record_type") == "history":
                for item in record.history.item:
                    if (item.key or "/".join(item.nested_key)) == "_step":
                        highest = max(highest, int(json.loads(item.value_json)))
        return highest
    except Exception:
        return None


@register_backend
class WandbBackend(Backend):
    name = "wandb"
    keywords = ("project", "entity", "name", "group", "tags", "notes", "dir", "mode")
    package = extra = "wandb"
    in_order = True  # run.log(step=) drops a step lower than the last one
    options: Dict[str, Any]

    def __init__(self, options: Mapping[str, object], warn: Callable[[str], None]):
        super().__init__(options, warn)
        self.run: Any = None  # the wandb Run, once open
        self.run_id: Optional[str] = None
        self.project: Optional[str] = None
        self.log_file: Optional[str] = None  # this run's transaction log (run-<id>.wandb)

    @classmethod
    def local_options(cls, folder: str, project: str, given: Mapping[str, object]) -> Dict[str, object]:
        """Offline (no account needed) unless ``WANDB_MODE`` says otherwise, its files under ``folder``."""
        return {"project": project, "dir": os.path.abspath(folder), "mode": os.environ.get("WANDB_MODE", "offline"),
                **given}

    @classmethod
    def where_to_look(cls, options: Mapping[str, object], command: Callable[[str, str], str]) -> Optional[str]:
        return f"W&B ({options['mode']}): wandb sync {options['dir']}/wandb/offline-run-* uploads them to your account"

    def open(self, state: Dict[str, Any], start_step: int, run_name: str) -> int:
        kwargs: Dict[str, Any] = {key: self.options[key] for key in ("entity", "group", "tags", "notes", "dir", "mode")
                                  if key in self.options}
        self.project = str(self.options.get("project") or state.get("project") or OWNER)
        kwargs.update(project=self.project, name=self.options.get("name") or run_name, reinit="create_new")
        old = state.get("id") if isinstance(state.get("id"), str) else None
        sent = int(state.get("sent_step", -1)) if isinstance(state.get("sent_step"), int) else -1
        held = logged_steps(state.get("log") if isinstance(state.get("log"), str) else None)
        if old and held is not None and held < sent:
            self._warn(f"unitb: W&B holds steps up to {held} of its run {old}, not the {sent} unitb handed it before "
                       f"the interrupted process ended; steps after {min(held, start_step)} are sent again")
            sent = held  # what W&B really has: the rest is sent again from the run folder
        if old and sent <= start_step:  # nothing after the resume point was sent: go on where it stopped
            self._opened(self._init(kwargs, id=old, resume="allow"))
            return sent
        if old:  # steps after start_step were sent: rewind the run to it, or fork it there
            for how in ("resume_from", "fork_from"):
                try:
                    self._opened(self._init(kwargs, **{how: f"{old}?_step={start_step}"}))
                except Exception as exc:
                    self._warn(f"unitb: W&B refused {how}={old}?_step={start_step} ({type(exc).__name__}: {exc})")
                    continue
                return start_step
            self._warn(f"unitb: the W&B run {old} holds steps after {start_step}; a new W&B run gets this one")
        self._opened(self._init(kwargs, id=run_id(str(kwargs["name"]))))
        return -1

    @staticmethod
    def _init(kwargs: Mapping[str, Any], **how: Any):
        """``wandb.init`` with its own ``Settings``: ``wandb.init`` writes ``resume_from`` /
        ``fork_from`` into the settings it is given, so one object shared by the attempts above
        made every fallback fail as "mutually exclusive"."""
        import wandb

        return wandb.init(**how, **kwargs, settings=wandb.Settings(console="off", silent=True))

    def _opened(self, run) -> None:
        self.run = run
        self.run_id = run.id
        try:
            self.log_file = str(run.settings.sync_file)
        except Exception:
            self.log_file = None

    def send(self, steps: List[Tuple[int, List[tuple]]]) -> None:
        for step, points in steps:
            self._send_step(step, points)
            time.sleep(0)  # hand the GIL back: training waits at most one step's conversion, not 5 ms

    def _send_step(self, step: int, points: List[tuple]) -> None:
        import wandb

        row: Dict[str, object] = {}
        for tag, kind, value in points:
            with self.skipped_on_error(tag, kind):
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
                    values = session_values(value)
                    if values:
                        self.run.config.update(values, allow_val_change=True)
        if row:
            self.run.log(row, step=step)

    def state(self) -> Dict[str, object]:
        return {"id": self.run_id, "project": self.project, "log": self.log_file}

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
