"""Write unitb records through ``tf.summary``."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


class TFSummarySink:
    """Adapts a ``tf.summary`` file writer to the core Sink (eager, host values)."""

    def __init__(self, logdir: str):
        self.logdir = logdir
        self.writer = tf.summary.create_file_writer(logdir)

    def write_scalar(self, tag: str, value: float, step: int) -> None:
        with self.writer.as_default():
            tf.summary.scalar(tag, value, step=step)

    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        with self.writer.as_default():
            tf.summary.histogram(tag, values, step=step)

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        with self.writer.as_default():
            tf.summary.image(tag, image[None], step=step, max_outputs=1)

    def write_summary(self, summary, step: int) -> None:
        with self.writer.as_default():
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
