"""Which training steps a profiler traces: ``profile_steps=(start, stop)`` on every entry point.

The window is on unitb's step axis (training iterations, the first is step 1), inclusive at
both ends. :class:`StepProfiler` starts the framework's profiler just before step ``start`` and
stops it just after step ``stop``; the adapters only say how to start and stop theirs
(``torch_adapter/profiler.py``, ``tf_adapter/profiler.py``). Outside the window an entry point
compares two integers per step and does nothing else.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple


def check_profile_steps(value: object) -> Optional[Tuple[int, int]]:
    """``None`` or ``(start, stop)`` with ``1 <= start <= stop``; also accepts Keras'
    ``profile_batch`` forms: one step ``N`` (``0`` = off) or the text ``"start,stop"``."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == 0):
        return None
    if isinstance(value, str):
        try:
            value = tuple(int(part) for part in value.split(","))
        except ValueError:
            value = (value,)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2 and
            all(isinstance(v, int) and not isinstance(v, bool) for v in value) and 1 <= value[0] <= value[1]):
        raise ValueError(f"profile_steps must be (start, stop) with 1 <= start <= stop (training steps), one step, "
                         f"or None; got {value!r}")
    return int(value[0]), int(value[1])


class ProfileWindow:
    """When to start and stop: ask :meth:`starts_before` before a step and :meth:`stops_after`
    after it (or, where an entry point only sees steps end, :meth:`starts_after` after the step
    before the window)."""

    def __init__(self, steps: Optional[Tuple[int, int]]) -> None:
        self.start, self.stop = steps if steps else (0, -1)
        self.active = False
        self.done = steps is None

    def starts_before(self, step: int) -> bool:
        """True once, before the first step of the window (or a later step inside it: a run
        resumed in the middle of the window profiles what is left of it)."""
        return not self.done and not self.active and self.start <= step <= self.stop

    def starts_after(self, step: int) -> bool:
        """The same, asked after ``step`` ended (the next step is ``step + 1``)."""
        return self.starts_before(step + 1)

    def stops_after(self, step: int) -> bool:
        return self.active and step >= self.stop

    def started(self) -> None:
        self.active = True

    def stopped(self) -> None:
        self.active, self.done = False, True

    def file_label(self) -> str:
        return f"steps-{self.start}-{self.stop}"


class StepProfiler:
    """Drives one profiling window: ``begin()`` starts the framework's profiler, ``end()``
    stops it and writes the trace (its label says the steps). A failure of either is one
    warning, and the window is over; training goes on."""

    def __init__(self, steps: Optional[Tuple[int, int]], begin: Callable[[], None], end: Callable[[str], None],
                 warn_once: Callable[[str, str, str], None]) -> None:
        self.window = ProfileWindow(steps)
        self._begin, self._end, self._warn = begin, end, warn_once

    def before_step(self, step: int) -> None:
        if self.window.starts_before(step):
            self._start()

    def before_block(self, first: int, last: int) -> None:
        """Before steps ``first..last`` run out of sight (a Keras ``steps_per_execution`` block):
        start when the window begins inside them."""
        w = self.window
        if not w.done and not w.active and w.start <= last and first <= w.stop:
            self._start()

    def after_step(self, step: int) -> None:
        """After ``step``: stop when it ended the window, or start when the window begins with
        the next step (for loops that only report finished steps)."""
        if self.window.stops_after(step):
            self._stop()
        elif self.window.starts_after(step):
            self._start()

    def close(self) -> None:
        """A run that ends inside the window writes what was traced."""
        if self.window.active:
            self._stop()

    def _start(self) -> None:
        try:
            self._begin()
            self.window.started()
        except Exception as exc:
            self.window.stopped()
            self._warn("profile", "start", f"profile_steps: the profiler did not start ({type(exc).__name__}: {exc})")

    def _stop(self) -> None:
        self.window.stopped()
        try:
            self._end(self.window.file_label())
        except Exception as exc:
            self._warn("profile", "stop", f"profile_steps: the trace was not written ({type(exc).__name__}: {exc})")

