"""What every benchmark suite shares: interleaved trials, ratios and their spread, the time unitb
spends on the training thread, and the table's rows."""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

Row = Tuple[str, str, str, str]  # benchmark, figure, target, met?

# Training-loop comparisons use the process's CPU time (all threads, the writer thread
# included): on a shared 2-core VM, wall time swings by ±15 % between identical runs
# (see the A/A rows), CPU time by much less, and it still counts every cycle logging costs.


CLOCK = time.process_time


def interleaved(variants: Dict[str, Callable[[], float]], trials: int) -> Dict[str, List[float]]:
    """Run every variant once per trial; each returns its own measured seconds.

    The order rotates from trial to trial (A B C, B C A, C A B, ...) and the garbage of the
    previous variant is collected first, so no variant always runs in the same position
    (after the same neighbour, with the same heap) — a fixed order showed up as a bias of
    several per cent in the A/A rows."""
    import gc

    out: Dict[str, List[float]] = {name: [] for name in variants}
    names = list(variants)
    for trial in range(trials):
        shift = trial % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            out[name].append(variants[name]())
    return out


class SelfTime:
    """Wall time spent inside chosen methods of an object (unitb's own work on the training
    thread): a direct measure that does not drown in run-to-run noise."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, obj, *names: str) -> None:
        for name in names:
            method = getattr(obj, name)

            def timed(*args, _method=method, **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
            setattr(obj, name, timed)


def self_time_row(label: str, fractions: List[float], limit: float) -> Row:
    median = statistics.median(fractions)
    return (label, f"{median * 100:.2f} % (trials {min(fractions) * 100:.2f} … {max(fractions) * 100:.2f} %)",
            f"≤ {limit * 100:g} %", met(median <= limit))


def ratio_stats(times: Dict[str, List[float]], name: str, base: str) -> Tuple[float, float, float]:
    ratios = [a / b for a, b in zip(times[name], times[base])]
    return statistics.median(ratios), min(ratios), max(ratios)


def fmt(median: float, low: float, high: float, as_overhead: bool = False) -> str:
    if as_overhead:
        return f"{(median - 1) * 100:+.1f} % (trials {(low - 1) * 100:+.1f} … {(high - 1) * 100:+.1f} %)"
    return f"{median:.2f}× (trials {low:.2f} … {high:.2f}×)"


def timed_call(own: SelfTime, fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        own.seconds += time.perf_counter() - start


def met(ok: bool) -> str:
    return "yes" if ok else "**no**"
