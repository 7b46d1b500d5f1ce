"""How TensorFlow profiles ``profile_steps`` (:class:`unitb.profiling.StepProfiler` decides when):
a ``tf.profiler`` trace under the run folder's ``plugins/profile/<time>/``, where TensorBoard's
PROFILE tab (``pip install tensorboard-plugin-profile``) finds it. Under ``steps_per_execution``
the trace covers whole blocks (Keras hands control back once a block)."""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import tensorflow as tf

from unitb.profiling import StepProfiler


def step_profiler(steps: Optional[Tuple[int, int]], folder: str,
                  warn_once: Callable[[str, str, str], None]) -> StepProfiler:
    return StepProfiler(steps, lambda: tf.profiler.experimental.start(folder),
                        lambda _label: tf.profiler.experimental.stop(), warn_once)
