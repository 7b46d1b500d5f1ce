"""The same run in Weights & Biases and MLflow, beside TensorBoard.

A backend never gets its own copy of the logging logic: a :class:`Forwarder` thread follows
the run folder's event files (what TensorBoard shows, written by every path unitb has — the
schema's scalars, the user's own values, ``tf.summary`` calls inside a model, in-graph
``TFLogger`` records) and sends each step's records to every backend at the event's own step.
So a backend has the same tags, steps and intervals as TensorBoard by construction, and
``unitb push`` is the same code run once over a finished run.

Rules:

- **The training thread never waits on the network.** Reading and sending happen on the
  forwarder's thread; ``close()`` waits at most ``backend_timeout`` seconds. A backend that
  fails gives one warning and is left out from then on; TensorBoard goes on.
- **A step is sent once.** W&B needs steps in increasing order, so the newest step stays open
  for one poll (late heavy records from the writer thread land in it); each backend's last sent
  step is kept in ``<run>/.unitb-backends.json`` with its run id.
- **Resume continues the same backend run.** At a resume from step S, a backend that got
  nothing after S goes on where it stopped. One that got steps after S (they were set aside in
  TensorBoard) is treated as its API allows: W&B rewinds the run to S (``resume_from``; a fork
  if rewinding is refused); MLflow, which cannot delete points, starts a new run that gets the
  steps up to S again from the folder, tagged with the run it replaces.
"""
from __future__ import annotations

import atexit
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from unitb.files import json_files
from unitb.files.names import BACKENDS_STATE
from unitb.backends.base import Backend, Point
from unitb.backends.registry import make_backend
from unitb.folder import step_index
from unitb.files.event_files import event_files
from unitb.read import run_reader
from unitb.read import records as records_io
from unitb.write import background

STATE_FILE = BACKENDS_STATE

_LIVE: "weakref.WeakSet[Forwarder]" = weakref.WeakSet()


def read_state(folder: str) -> Dict[str, Dict[str, object]]:
    """What earlier runs into ``folder`` sent, per backend; anything unreadable counts as nothing."""
    data = json_files.read_dict(os.path.join(folder, STATE_FILE))
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def write_state(folder: str, state: Mapping[str, object]) -> None:
    # one forwarder per folder (the folder's claim); its .tmp is never uploaded by a mirror
    json_files.write(os.path.join(folder, STATE_FILE), state, indent=1, sort_keys=True)


@dataclass
class FollowedFile:
    offset: int = 0


@dataclass
class StepBuffer:
    """Records read but not sent yet, by step; the newest step waits one poll."""
    pending: Dict[int, List[Point]] = field(default_factory=dict)
    seen_high: int = -1

    def add(self, step: int, point: Point) -> None:
        self.pending.setdefault(step, []).append(point)

    def ready(self, below: Optional[int]) -> List[Tuple[int, List[Point]]]:
        """The steps < ``below`` (all with None), in order, removed from the buffer."""
        steps = sorted(s for s in self.pending if below is None or s < below)
        return [(s, self.pending.pop(s)) for s in steps]


class Forwarder:
    """Follows one run folder and sends its records to the extra backends (module rules)."""
    def __init__(self, folder: str, settings: Mapping[str, Mapping[str, object]], start_step: int,
                 warn: Callable[[str], None], run_name: Optional[str] = None, poll_secs: float = 2.0,
                 timeout: float = 30.0, follow: bool = True):
        self.folder = folder
        self.start_step = int(start_step)
        self.run_name = run_name or os.path.basename(os.path.normpath(folder))
        self.poll_secs = poll_secs
        self.timeout = timeout
        self._warn = warn
        self._settings = {name: dict(options) for name, options in settings.items()}
        self._backends: List[Backend] = []
        self._sent: Dict[str, int] = {}  # per backend: the last step it holds
        self._sent_at_open: Dict[str, int] = {}
        self._files: Dict[str, FollowedFile] = {}
        self._plugin_of: Dict[str, str] = {}
        self._buffer = StepBuffer()
        self._late = 0
        self._started_at: Optional[float] = None  # the run's first event time, where it is known at open
        self._last_event_at: Optional[float] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if follow:
            self._thread = threading.Thread(target=self._run, name="unitb-backends", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ lifecycle
    def _open_backends(self) -> None:
        state = read_state(self.folder)
        for name, options in self._settings.items():
            try:
                backend = make_backend(name, options, self._warn)
                backend.started_at = self._started_at
                self._sent[name] = backend.open(dict(state.get(name, {})), self.start_step, self.run_name)
                self._sent_at_open[name] = self._sent[name]
                self._backends.append(backend)
            except Exception as exc:
                self._warn(f"unitb: could not open the {name} run ({type(exc).__name__}: {exc}); "
                           f"the run goes on without {name}, TensorBoard is unaffected")
        self._save_state()

    def _run(self) -> None:
        self._open_backends()
        _LIVE.add(self)
        _exit_after_the_backends()
        while not self._stop.wait(self.poll_secs):
            self._poll(final=False)
        self._poll(final=True)
        self._close_backends()

    def run_once(self) -> None:
        """Send everything the folder holds now and close (``unitb push``). A finished run is
        opened as a resume at its last step: a backend run that holds it all is kept as it is.
        The files are read a block at a time in step with each other (the one furthest behind
        reads on), and the steps every file has passed are sent as they are read: what is held
        at once is about a block of each file, whatever the run's length (a record more than a
        block out of step order in its file reaches a backend that takes steps in order late,
        as in a live run)."""
        files = event_files(self.folder)
        self.start_step = max([step_index.last_step(path) for path in files] + [0])
        self._started_at = _first_event_time(files)
        self._open_backends()
        streams = {path: self._read_blocks(path) for path in files}
        highest = {path: -1 for path in files}
        while streams:
            path = min(streams, key=highest.__getitem__)  # the file furthest behind reads on
            try:
                highest[path] = max(highest[path], next(streams[path]))
            except StopIteration:
                del streams[path]
            except Exception as exc:
                self._warn(f"unitb: could not read {path} for the backends ({type(exc).__name__}: {exc})")
                del streams[path]
            if streams:  # every step below what each unfinished file has reached is complete
                batch = self._buffer.ready(min(highest[path] for path in streams))
                if batch:
                    self._send(batch)
        self._poll(final=True)
        self._close_backends()

    def close(self, timeout: Optional[float] = None) -> bool:
        """Send what the files hold (the writer is closed by now) and finish the backend runs,
        waiting at most ``timeout`` seconds; returns whether it finished in time."""
        if self._thread is None or not self._thread.is_alive():
            return True
        timeout = self.timeout if timeout is None else timeout
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._warn(f"unitb: the backends had not caught up after {timeout:g} s; the rest is sent in the "
                       f"background until the process exits, and `unitb push` sends what is missing later")
            return False
        return True

    def _close_backends(self) -> None:
        for backend in self._backends:
            backend.ended_at = self._last_event_at
            self._finish(backend)
        self._save_state()

    def _finish(self, backend: Backend) -> None:
        try:
            backend.close()
        except Exception as exc:
            self._warn(f"unitb: could not finish the {backend.name} run ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ following
    def _poll(self, final: bool) -> None:
        try:
            self._read_new()
        except Exception as exc:
            self._warn(f"unitb: could not read {self.folder} for the backends ({type(exc).__name__}: {exc})")
        previous_high = self._buffer.seen_high
        if self._buffer.pending:
            self._buffer.seen_high = max(self._buffer.seen_high, max(self._buffer.pending))
        batch = self._buffer.ready(None if final else previous_high)
        if batch:
            self._send(batch)
            self._save_state()

    def _read_new(self) -> None:
        for path in event_files(self.folder):
            if os.path.getsize(path) > self._files.setdefault(path, FollowedFile()).offset:
                for _ in self._read_blocks(path):
                    pass

    def _read_blocks(self, path: str) -> Iterator[int]:
        """Read what ``path`` gained into the buffer, a block at a time; yields the highest
        step of each block (-1 for one without summary records)."""
        followed = self._files.setdefault(path, FollowedFile())
        # The offset is the loop's own target: where the next read starts, after each block.
        for events, followed.offset in records_io.events_after(path, followed.offset):  # noqa: B020
            highest = -1
            if len(events):
                self._last_event_at = max(self._last_event_at or 0.0, _wall_time(events[-1]))
            for tag, step, kind, value in run_reader.decoded_values(events, self._plugin_of):
                self._buffer.add(step, (tag, kind, value))
                highest = max(highest, step)
            yield highest

    def _send(self, batch: List[Tuple[int, List[Point]]]) -> None:
        for backend in list(self._backends):
            sent = self._sent.get(backend.name, -1)
            before = self._sent_at_open.get(backend.name, -1)  # what earlier runs into the folder sent
            if backend.in_order:
                fresh = [(step, points) for step, points in batch if step > sent]
                late = [step for step, _ in batch if before < step <= sent]
            else:  # a backend that takes any order gets late records too; each record is read once
                fresh = [(step, points) for step, points in batch if step > before]
                late = []
            if late and not self._late:  # records of a step this process had sent already
                self._late += len(late)
                self._warn(f"unitb: records for step {late[0]} reached the folder after step {sent} was sent; "
                           f"{backend.name} does not get them (it takes steps in increasing order only)")
            if not fresh:
                continue
            try:
                backend.send(fresh)
            except Exception as exc:
                self._warn(f"unitb: {backend.name} failed at steps {fresh[0][0]}..{fresh[-1][0]} "
                           f"({type(exc).__name__}: {exc}); nothing more goes to {backend.name} in this run, "
                           "TensorBoard is unaffected")
                self._backends.remove(backend)
                self._finish(backend)  # what it took so far is kept there
                continue
            self._sent[backend.name] = max(sent, fresh[-1][0])

    def _save_state(self) -> None:
        state = read_state(self.folder)
        for backend in self._backends:
            state[backend.name] = {**backend.state(), "sent_step": self._sent.get(backend.name, -1)}
        try:
            write_state(self.folder, state)
        except OSError:
            pass  # a read-only run (a pushed URL): the backends' own ids are then not kept


def _wall_time(event: Any) -> float:
    return float(event.wall_time)


def _first_event_time(files: List[str]) -> Optional[float]:
    """When the run began: the earliest of its files' first records (each read alone)."""
    times = []
    for path in files:
        try:
            event, _end = records_io.first_event(path)
        except OSError:
            continue
        if event is not None:
            times.append(_wall_time(event))
    return min(times) if times else None


def close_all(timeout: float = 30.0) -> None:
    """At exit: write out the runs' queued records, then let every forwarder send them and
    finish its backend runs (a process that never called ``close()`` loses nothing)."""
    background.write_out_all(timeout)
    for forwarder in list(_LIVE):
        forwarder.close(timeout)


def _exit_after_the_backends() -> None:
    """Run :func:`close_all` at exit before the backends' own exit hooks (which finish their
    runs): ``atexit`` runs the newest first, so it is registered again after each backend opened."""
    atexit.unregister(close_all)
    atexit.register(close_all)
    background.then_at_exit(close_all)  # SIGTERM


def start(folder: str, settings: Mapping[str, Mapping[str, object]], start_step: int,
          warn: Callable[[str], None], run_name: Optional[str] = None, timeout: float = 30.0) -> Optional[Forwarder]:
    """The forwarder of a run that has extra backends; None without them."""
    if not settings:
        return None
    return Forwarder(folder, settings, start_step, warn, run_name=run_name, timeout=timeout)


def push(folder: str, settings: Mapping[str, Mapping[str, object]], warn: Callable[[str], None]) -> Dict[str, int]:
    """Send a finished run to the backends (continuing the backend runs its state names, so a
    push after an interrupted send sends only what is missing); returns each backend's last step."""
    forwarder = Forwarder(folder, settings, start_step=0, warn=warn, follow=False)
    forwarder.run_once()
    return dict(forwarder._sent)
