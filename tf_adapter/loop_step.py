"""One step of a custom TF loop as ``TFLogger`` writes it: eagerly from host values, or, inside the
loop's own ``tf.function``, as summary ops recorded where the interval policy says so — with the
eager step's tag mapping (:func:`unitb.life.train_step.step_scalars`) in both cases."""
from __future__ import annotations

from typing import Callable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tf_adapter import measure
from unitb import schema
from unitb.life.layers import select_layers
from unitb.life.options import LogOptions
from unitb.life.train_step import split_train_values, step_scalars, warn_other_totals
from unitb.write.writer import RunLogger, grad_norm_scalars


class LoopGradients:
    """The layers whose gradient norms a loop logs (picked once per run, as on every entry point),
    and the norms measured eagerly or in a graph."""

    def __init__(self, options: LogOptions, model_name: Optional[str]):
        self.options, self.model_name = options, model_name
        self.picked: Optional[List[int]] = None
        self.names: List[str] = []

    def pick(self, variables: Optional[Sequence], count: int) -> Tuple[List[int], List[str]]:
        if self.picked is None:
            if variables is not None:
                self.picked, self.names = measure.pick_layers(list(variables), self.options.max_layers_to_log,
                                                              self.model_name)
            else:
                self.picked = select_layers([str(i) for i in range(count)], self.options.max_layers_to_log)
                self.names = [f"var{i}" for i in self.picked]
        return self.picked, self.names

    @staticmethod
    def unscaled(grads: Sequence, loss_scale) -> list:
        """Gradients of ``scale_loss(loss)`` divided by the scale they carry (mixed precision)."""
        return [None if g is None else tf.cast(measure.dense_grad(g), tf.float32) / tf.cast(loss_scale, tf.float32)
                for g in grads]

    def write_eager(self, run: RunLogger, step: int, grads: Sequence, variables: Optional[Sequence],
                    loss_scale=None) -> None:
        """Norms (and, with ``log_grad_hist``, histograms) at a due ``step``; an update the loss
        scaler skips (non-finite scaled gradients) is not measured."""
        picked, names = self.pick(variables, len(grads))
        values = measure.norms_in_graph(list(grads), picked).numpy()  # one transfer
        if loss_scale is not None and not np.all(np.isfinite(values)):
            return
        run.grad_norms(step, float(values[0]), dict(zip(names, values[1:].tolist())))
        if self.options.log_grad_hist:
            run.histograms(schema.gradients_histogram, step,
                           {n: np.asarray(measure.dense_grad(grads[i])) for i, n in zip(picked, names)
                            if grads[i] is not None})


def write_in_graph(run: RunLogger, options: LogOptions, gradients: LoopGradients, step, losses: Mapping,
                   learning_rate, grads: Optional[Sequence], variables: Optional[Sequence], loss_scale=None,
                   metrics: Optional[Mapping] = None, epoch=None,
                   reached: Optional[Callable[[int], None]] = None) -> None:
    """The step's summary ops, inside the loop's ``tf.function``: its scalars where the scalar
    interval is due, its gradient norms where the gradient interval is (the names are known at
    trace time). ``reached`` is told each step on the host, as the scalar interval is asked."""

    def scalar_due_at(s) -> np.bool_:
        if reached is not None:
            reached(int(s))
        return np.bool_(options.scalar_policy.should_log(int(s)))

    step = tf.cast(step, tf.int64)
    scalar_due = tf.numpy_function(scalar_due_at, [step], tf.bool)
    grad_due = tf.numpy_function(lambda s: np.bool_(options.grad_policy.should_log(int(s))), [step], tf.bool)
    split = split_train_values(losses=losses, metrics=metrics)
    warn_other_totals(run, split)  # at trace time
    scalars = step_scalars(options, split, {"0": learning_rate} if learning_rate is not None else None, epoch,
                           loss_scale)
    run.sink.write_scalars_in_graph(step, scalar_due, [(tag, value) for tag, value, _kind in scalars])
    if options.log_grad_norm and grads is not None:
        picked, names = gradients.pick(variables, len(grads))
        norms = measure.norms_in_graph(list(grads), picked)
        if loss_scale is not None:  # a skipped (overflowed) update is not logged
            grad_due = tf.logical_and(grad_due, tf.reduce_all(tf.math.is_finite(norms)))
        run.sink.write_scalars_in_graph(step, grad_due, grad_norm_scalars(
            norms[0], {name: norms[i + 1] for i, name in enumerate(names)}))
