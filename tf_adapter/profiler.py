"""How TensorFlow profiles ``profile_steps`` (:class:`unitb.life.profiling.StepProfiler` decides when):
a ``tf.profiler`` trace under the run folder's ``plugins/profile/<time>/``, where TensorBoard's
PROFILE tab (``pip install tensorboard-plugin-profile``) finds it. Under ``steps_per_execution``
the trace covers whole blocks (Keras hands control back once a block)."""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import tensorflow as tf

from unitb.life.profiling import StepProfiler


def step_profiler(steps: Optional[Tuple[int, int]], folder: str,
                  warn_once: Callable[[str, str, str], None]) -> StepProfiler:
    return StepProfiler(steps, lambda: tf.profiler.experimental.start(folder),
                        lambda _label: tf.profiler.experimental.stop(), warn_once)


class StepMarkers:
    """Step markers in a profile, from Keras' batch hooks: the PROFILE tab's Overview page reports
    step time only for steps so marked, and Keras 3's TF trainer marks none. A marker spans one
    batch hook to the next (one block under ``steps_per_execution``)."""

    def __init__(self) -> None:
        self._open = None

    def begin(self, step: int) -> None:
        self.end()
        self._open = tf.profiler.experimental.Trace("train", step_num=step, _r=1)
        self._open.__enter__()

    def end(self) -> None:
        if self._open is not None:
            self._open.__exit__(None, None, None)
            self._open = None
