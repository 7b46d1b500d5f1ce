"""``unitb.CheckpointManager``: restore latest, resume the step, save every N steps.

Wraps ``tf.train.Checkpoint`` + ``tf.train.CheckpointManager`` the way a custom YOLO-style
loop uses them, and tells attached :class:`~tf_adapter.TFLogger` s the step it
restored, so they remove the orphaned steps of the interrupted run before writing again.
"""
from __future__ import annotations

from typing import List, Optional

import tensorflow as tf

from unitb.life.policy import check_interval


class CheckpointManager:
    """``checkpoint`` must hold the step counter as ``checkpoint.step``
    (``tf.train.Checkpoint(step=tf.Variable(0), model=..., optimizer=...)``) or it is given
    as ``step_counter``."""

    def __init__(self, checkpoint: tf.train.Checkpoint, directory: str, max_to_keep: int = 3,
                 save_every: int = 50, step_counter: Optional[tf.Variable] = None):
        if not isinstance(checkpoint, tf.train.Checkpoint):
            raise ValueError(f"checkpoint must be a tf.train.Checkpoint, got {type(checkpoint).__name__}")
        self.save_every = check_interval("save_every", save_every)
        check_interval("max_to_keep", max_to_keep)
        self.step_counter = step_counter if step_counter is not None else getattr(checkpoint, "step", None)
        if self.step_counter is None:
            raise ValueError("the checkpoint has no `step` variable: create it as "
                             "tf.train.Checkpoint(step=tf.Variable(0), ...) or pass step_counter=")
        self.checkpoint = checkpoint
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
        self.restored_step: Optional[int] = None
        self._loggers: List[object] = []
        self._last_saved: Optional[int] = None

    @property
    def step(self) -> int:
        return int(self.step_counter.numpy())

    def attach(self, logger) -> None:
        """Register a logger: it learns the restored step and is flushed at every save."""
        if logger not in self._loggers:
            self._loggers.append(logger)

    def restore_or_initialize(self) -> int:
        """Restore the latest checkpoint if there is one; return its step (0 when fresh)."""
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest)
        self.restored_step = self.step if latest else 0
        self._last_saved = self.restored_step if latest else None
        return self.restored_step

    def maybe_save(self, step: Optional[int] = None) -> Optional[str]:
        """Save when the step is a multiple of ``save_every`` (``checkpoint_number=step``).

        Attached loggers are flushed first, so everything logged up to a checkpoint is on
        disk once the checkpoint is.
        """
        current = self.step if step is None else int(step)
        if current <= 0 or current % self.save_every != 0 or current == self._last_saved:
            return None
        for logger in self._loggers:
            logger.flush()
        path = self.manager.save(checkpoint_number=current)
        self._last_saved = current
        return path

    @property
    def latest_checkpoint(self) -> Optional[str]:
        return self.manager.latest_checkpoint
