"""Which training steps of a Keras ``fit`` are due, planned a block at a time, in plain Python.

Keras hands control back once per block of ``steps_per_execution`` iterations. Before a
block, :class:`DuePlan` notes which of its steps are due for scalars, train images and
gradient norms (the gradient mask goes into the graph); after it, the callback asks what
became due by the last completed step. :class:`EpochClock` turns a step into the fractional
``train/epoch``. Neither touches TensorFlow, so both are tested on their own.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

from unitb.life.options import LogOptions


class DuePlan:
    """Due steps of the scalar, image and gradient-norm policies, one block at a time."""

    def __init__(self, options: LogOptions, with_images: bool) -> None:
        self.options = options
        self.with_images = with_images
        self.reset(0)

    def reset(self, step: int) -> None:
        """At the start of a fit at ``step``: nothing is planned, everything up to it is seen."""
        self.observed = step  # iterations completed when the callback last looked
        self.last_norm_row = step  # the newest gradient-norm row read from the graph
        self.scalars: List[int] = []
        self.images: List[int] = []
        self.grads: List[int] = []

    def plan_block(self, start: int, size: int, grads: bool = True) -> Tuple[List[bool], List[bool]]:
        """Note the due steps of the block (``start``, ``start + size``]; returns, per step of
        the block, whether the graph measures gradient norms there (none when ``grads`` is
        False: no probe) and whether scalars are recorded there (the model's own tf.summary
        calls follow that)."""
        opts = self.options
        block = range(start + 1, start + size + 1)
        scalars = [opts.scalar_policy.should_log(s) for s in block]
        self.scalars.extend(s for s, d in zip(block, scalars) if d)
        if self.with_images:
            self.images.extend(s for s in block if opts.train_image_policy.should_log(s))
        if not (grads and opts.log_grad_norm):
            return [False] * size, scalars
        due = [opts.grad_policy.should_log(s) for s in block]
        self.grads.extend(s for s, d in zip(block, due) if d)
        return due, scalars

    def due_by(self, end: int) -> bool:
        """Something planned is due by iteration ``end`` and not looked at yet (cheap; run
        before every block)."""
        return end > self.observed and any(due and due[0] <= end for due in (self.scalars, self.grads, self.images))

    @staticmethod
    def _take(due: List[int], end: int) -> Optional[int]:
        taken = [s for s in due if s <= end]
        del due[:len(taken)]
        return taken[-1] if taken else None

    def take_scalars(self, end: int) -> Optional[int]:
        """The step to label the scalars due by ``end`` with (the last due one), or None."""
        return self._take(self.scalars, end)

    def take_image(self, end: int) -> Optional[int]:
        return self._take(self.images, end)

    def grads_due_by(self, end: int) -> bool:
        return bool(self.grads) and self.grads[0] <= end

    def norms_read_through(self, step: int) -> None:
        """Gradient-norm rows up to ``step`` were read: those due steps are done."""
        self.last_norm_row = step
        self.grads = [s for s in self.grads if s > step]


class EpochClock:
    """``train/epoch`` at a step: the epoch index plus the fraction of the epoch done.

    With a dataset of unknown length (a generator, a ``tf.data`` pipeline without
    cardinality) the fraction is known once the fit's first epoch has ended (its length is
    then taken as every epoch's); until then the value is the number of whole epochs
    completed."""

    def __init__(self) -> None:
        self.epoch = 0
        self.base = 0  # iterations completed when the epoch began
        self.learned_length = 0

    def begin(self, epoch: int, base: int) -> None:
        self.epoch, self.base = epoch, base

    def end(self, step: int, known_length: Optional[int]) -> None:
        """At the epoch's end: learn its length when Keras did not know it."""
        if not known_length and not self.learned_length and step > self.base:
            self.learned_length = step - self.base

    def at(self, step: int, known_length: Optional[int]) -> float:
        length = known_length or self.learned_length
        if not length:
            return float(self.epoch)
        return self.epoch + (step - self.base) / int(length)
