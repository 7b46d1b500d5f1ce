"""When to log: one interval policy shared by every adapter.

Steps are optimizer updates completed (the first update is step 1), epochs are completed
epochs (the first is 1). A policy answers ``should_log(step)``; the adapters ask it and
never test ``step % n`` themselves, so a Keras run and an mmengine run with the same
settings log at the same steps.

Policies:

* :class:`EveryNSteps` — ``step % interval == 0``, plus step 1 when ``first=True`` (so a
  curve has a point as soon as training starts).
* :class:`EveryNEpochs` — ``epoch % interval == 0``.
* :class:`DenseThenSparse` — about ``density`` points per doubling of the step count, capped
  at ``interval``: dense at the start, where curves move fastest, sparse later, and even on
  a log-x axis. With ``density=8, interval=100``: steps 1-15 all logged, 16-31 every 2nd,
  32-63 every 4th, ... then every 100th once 2**k/8 reaches 100.
"""
from __future__ import annotations

import math
import numbers


def check_interval(name: str, value: object) -> int:
    """Validate an interval argument: a positive integer (numpy ints accepted, bools not),
    else ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_non_negative(name: str, value: object, what: str = "a non-negative number") -> float:
    """Validate a finite number >= 0 (seconds to wait, an interval where 0 means off; bools
    not), else ValueError: ``{name} must be {what}, got …``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_fraction(name: str, value: object, low: float = 0.0, high: float = 1.0) -> float:
    """Validate a float in ``[low, high]`` (e.g. ``kpt_thr``), else ValueError naming it."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}") from None
    if not (low <= number <= high) or math.isnan(number):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return number


class StepPolicy:
    """Base class: decides per optimizer step."""

    def should_log(self, step: int) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def next_step(self, after: int) -> int:
        """The first step ``> after`` this policy logs (used to arm measurements early)."""
        step = after + 1
        while not self.should_log(step):
            step += 1
        return step


class EveryNSteps(StepPolicy):
    """Log every ``interval`` optimizer steps; ``first=True`` also logs step 1."""

    def __init__(self, interval: int, first: bool = True, name: str = "interval"):
        self.interval = check_interval(name, interval)
        self.first = bool(first)

    def should_log(self, step: int) -> bool:
        if step <= 0:
            return False
        return step % self.interval == 0 or (self.first and step == 1)

    def __repr__(self) -> str:
        return f"EveryNSteps({self.interval}, first={self.first})"


class EveryNEpochs:
    """Log after every ``interval``-th completed epoch (epochs count from 1)."""

    def __init__(self, interval: int, name: str = "interval"):
        self.interval = check_interval(name, interval)

    def should_log(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.interval == 0

    def __repr__(self) -> str:
        return f"EveryNEpochs({self.interval})"


class DenseThenSparse(StepPolicy):
    """About ``density`` logged steps per doubling of the step count, never sparser than
    ``interval`` and never denser than ``min_interval``."""

    def __init__(self, interval: int, density: int = 8, min_interval: int = 1):
        self.interval = check_interval("interval", interval)
        self.density = check_interval("density", density)
        self.min_interval = check_interval("min_interval", min_interval)
        if self.min_interval > self.interval:
            raise ValueError(
                f"min_interval ({self.min_interval}) must not exceed interval ({self.interval})"
            )

    def interval_at(self, step: int) -> int:
        octave = 1 << max(0, int(step).bit_length() - 1)  # 2**floor(log2(step))
        return max(self.min_interval, min(self.interval, octave // self.density))

    def should_log(self, step: int) -> bool:
        if step <= 0:
            return False
        return step == 1 or step % self.interval_at(step) == 0

    def __repr__(self) -> str:
        return f"DenseThenSparse({self.interval}, density={self.density})"


def make_step_policy(name: str, interval: object, adaptive: bool = False) -> StepPolicy:
    """The policy the adapters build from a user's ``*_interval`` argument."""
    checked = check_interval(name, interval)
    if adaptive:
        return DenseThenSparse(checked)
    return EveryNSteps(checked, first=True, name=name)
