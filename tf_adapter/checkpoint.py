"""``unitb.CheckpointManager``: restore latest, resume the step, save every N steps.

Wraps ``tf.train.Checkpoint`` + ``tf.train.CheckpointManager`` the way a custom YOLO-style
loop uses them, and tells attached :class:`~tf_adapter.TFLogger` s the step it
restored, so they remove the orphaned steps of the interrupted run before writing again.
"""
from __future__ import annotations

from typing import Any, List, Optional

import tensorflow as tf

from unitb.life.policy import check_interval


class CheckpointManager:
    """Restore the latest checkpoint, give the step to continue from, save every N steps.

    Args:
        checkpoint: A ``tf.train.Checkpoint`` holding the step counter as ``checkpoint.step``
            (``tf.train.Checkpoint(step=tf.Variable(0), model=..., optimizer=...)``).
        directory: Where the checkpoints go.
        max_to_keep: Checkpoints kept; older ones are deleted.
        save_every: :meth:`maybe_save` saves when the step is a multiple of this.
        step_counter: The step variable, when ``checkpoint`` has no ``step``.

    Raises:
        ValueError: ``checkpoint`` is not a ``tf.train.Checkpoint``, has no step, or an interval is not positive.
    """

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

    def attach(self, logger: Any) -> None:
        """Register a logger (``TFLogger`` does it itself when given this manager).

        Args:
            logger: It learns the restored step and is flushed before every save.
        """
        if logger not in self._loggers:
            self._loggers.append(logger)

    def restore_or_initialize(self) -> int:
        """Restore the latest checkpoint, if there is one.

        Returns:
            The step it was saved at; 0 when there was none.
        """
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

        Args:
            step: The step to judge (None: the checkpoint's step counter).

        Returns:
            The checkpoint's path when it saved, else None.
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
