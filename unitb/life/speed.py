"""How fast training runs and how much memory it holds, measured between logging points.

Every adapter feeds the same meter: the number of samples and the seconds spent waiting for
data of each iteration (plain additions, no device work), and at each scalar point it reads
the wall clock once. The families (``train/time/step``, ``train/time/data``,
``train/throughput``, ``train/memory/host_mb``) are averages since the previous point, so a
point every 100 steps still describes those 100 steps. Peak accelerator memory is the
adapter's job (it knows the framework); on a CPU-only run it is simply absent.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Optional

from unitb import schema


def host_rss_mb() -> Optional[float]:
    """Resident memory of this process in MiB (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024
    except Exception:
        return None


def _perf_counter() -> float:
    """The clock, looked up at each call (a test gives the module another ``time``)."""
    return time.perf_counter()


class SpeedMeter:
    """Averages over the iterations between two scalar points."""

    def __init__(self, device_peak_mb: Optional[Callable[[], Optional[float]]] = None,
                 clock: Optional[Callable[[], float]] = None):
        """``device_peak_mb``: the adapter's reader of peak accelerator memory since its last
        call (None on a CPU-only run, and then the family is simply absent)."""
        self.device_peak_mb = device_peak_mb
        self.clock = clock or _perf_counter
        self._time: Optional[float] = None
        self._step: Optional[int] = None
        self._samples = 0
        self._data_seconds = 0.0
        self._data_count = 0
        self._paused: Optional[float] = None

    def pause(self) -> None:
        """Validation (or anything that is not training) starts: its time is not a step's."""
        if self._time is not None and self._paused is None:
            self._paused = self.clock()

    def resume(self) -> None:
        if self._paused is not None and self._time is not None:
            self._time += self.clock() - self._paused
        self._paused = None

    def start(self, step: int) -> None:
        """Training (re)starts after ``step``: the next point measures from now."""
        self._time, self._step, self._paused = self.clock(), int(step), None
        self._samples, self._data_seconds, self._data_count = 0, 0.0, 0

    def add_samples(self, count: int) -> None:
        self._samples += int(count)

    def add_data_time(self, seconds: float) -> None:
        self._data_seconds += float(seconds)
        self._data_count += 1

    def point(self, step: int, samples: Optional[int] = None) -> Dict[str, float]:
        """Tag -> value for the iterations since the last point, up to ``step`` (completed).
        ``samples`` overrides the counted samples (an adapter that counts them elsewhere)."""
        now = self.clock()
        values: Dict[str, float] = {}
        rss = host_rss_mb()
        if rss is not None:
            values[schema.MEMORY_HOST_MB] = rss
        device = self.device_peak_mb() if self.device_peak_mb is not None else None
        if device is not None:
            values[schema.MEMORY_DEVICE_MB] = device
        if self._time is not None and self._step is not None and step > self._step and now > self._time:
            seconds = now - self._time
            values[schema.TIME_STEP] = seconds / (step - self._step)
            count = self._samples if samples is None else samples
            if count > 0:
                values[schema.THROUGHPUT] = count / seconds
            if self._data_count:
                values[schema.TIME_DATA] = self._data_seconds / self._data_count
        self.start(step)
        return values
