"""Write unitb records through ``tf.summary``."""
from __future__ import annotations

import threading
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

from unitb import protos


class TFSummarySink:
    """Adapts a ``tf.summary`` file writer to the core Sink (eager, host values).

    An eager ``tf.summary.scalar`` costs ~0.4 ms of op dispatch. Scalars of one step are
    therefore gathered and written as ONE summary (``write_raw_pb``, same tensor form and
    plugin metadata as ``tf.summary.scalar``) when the step changes, before any other
    record, and on ``flush``.
    """

    def __init__(self, logdir: str):
        self.logdir = logdir
        self.writer = tf.summary.create_file_writer(logdir)
        self._lock = threading.Lock()
        self._pending_step: Optional[int] = None
        self._pending: List[Tuple[str, float]] = []

    def write_scalar(self, tag: str, value: float, step: int) -> None:
        with self._lock:
            if self._pending and step != self._pending_step:
                self._write_pending()
            self._pending_step = step
            self._pending.append((tag, value))

    def reopen(self) -> None:
        """Start a new event file (after the directory vanished or the disk filled up)."""
        old = self.writer
        self.writer = tf.summary.create_file_writer(self.logdir)
        try:
            old.close()
        except Exception:
            pass

    def _write_pending(self) -> None:
        if not self._pending:
            return
        summary = protos.scalars_summary(self._pending)
        step, self._pending, self._pending_step = self._pending_step, [], None
        with self.writer.as_default():
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)

    def _before_other_record(self) -> None:
        with self._lock:
            self._write_pending()

    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        self._before_other_record()
        with self.writer.as_default():
            tf.summary.histogram(tag, values, step=step)

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self._before_other_record()
        with self.writer.as_default():
            tf.summary.image(tag, image[None], step=step, max_outputs=1)

    def write_summary(self, summary, step: int) -> None:
        self._before_other_record()
        with self.writer.as_default():
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)

    def flush(self) -> None:
        self._before_other_record()
        self.writer.flush()

    def close(self) -> None:
        self._before_other_record()
        self.writer.close()
