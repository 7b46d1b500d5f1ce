"""The in-graph side of TFCallback: a training-iteration counter and gradient norms of the
updates the optimizer really applies, written into a small ring read after the fact.

Why in the graph: under ``steps_per_execution`` Keras runs several iterations inside one
call, out of Python's sight, and under mixed precision / gradient accumulation only the
optimizer knows which gradients it applies. So ``optimizer.apply`` is wrapped once per
optimizer (shared by every TFCallback on the model, across fits):

- the outer optimizer's ``apply`` runs once per training iteration: it advances
  ``counter`` (iterations completed, the unitb step) and, when the step is due (a mask the
  callback sets before each block), raises ``pending``;
- the optimizer that applies the update (``LossScaleOptimizer.inner_optimizer`` under
  ``mixed_float16``, else the optimizer itself) measures, while ``pending``, the first update
  it really applies: unscaled gradients (loss scaling), the accumulated gradient on the
  iteration that applies it (``gradient_accumulation_steps``), after clipping. A step the
  loss scaler skipped (inf/NaN) applies nothing, so nothing is measured there; the norm is
  taken at the next applied update, labelled with that update's step.

Rows are ``[step, applied global norm, pre-clip norm (-1: no clipping), layers...]`` at
``step % slots``.
"""
from __future__ import annotations

from typing import List, Optional

import tensorflow as tf

from tf_adapter import keras_internals, measure
from unitb.life.layers import unique_names

ATTRIBUTE = "_unitb_probe"

# The wrappers use tf.cond explicitly; autograph converting them (and everything they call)
# on every trace only adds start-up time to each fit().
_plain = tf.autograph.experimental.do_not_convert


def applying_optimizer(optimizer):
    """The optimizer that applies the update: the inner one of a ``LossScaleOptimizer``."""
    inner = getattr(optimizer, "inner_optimizer", None)
    return inner if inner is not None else optimizer


def raw_iterations(optimizer) -> int:
    """Iterations the optimizer has counted (micro-batches under gradient accumulation,
    ``_iterations``; ``iterations`` would be updates). Skipped loss-scaled steps not included."""
    return int(keras_internals.micro_batches(applying_optimizer(optimizer)).numpy())


def loss_scale(optimizer):
    """The dynamic loss scale variable under mixed precision, else None."""
    return getattr(optimizer, "dynamic_scale", None)


class GradProbe:
    """One per optimizer: see the module docstring. ``window`` = steps per execution."""

    def __init__(self, model, layer_limit: int, window: int):
        optimizer = model.optimizer
        self.optimizer = optimizer
        self.window = max(1, int(window))
        self.slots = max(64, 2 * self.window)
        variables = list(model.trainable_variables)
        self.picked, self.layer_names = measure.pick_layers(variables, layer_limit, model.name)
        self._paths = unique_names([measure.variable_name(v) for v in variables])
        self._variables = variables
        with tf.init_scope():
            # Plain (not distributed) variables: under tf.distribute only the first local replica
            # writes them, inside tf.cond, where a distributed variable's merge_call is not allowed.
            self.counter = tf.Variable(tf.constant(raw_iterations(optimizer), tf.int64), trainable=False,
                                       name="unitb_step")
            self.norms = tf.Variable(tf.zeros((self.slots, len(self.picked) + 3)), trainable=False,
                                     name="unitb_grad_norms")
            self.mask = tf.Variable(tf.zeros((self.window,), tf.bool), trainable=False, name="unitb_due")
            self.mask_base = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unitb_due_base")
            self.pending = tf.Variable(False, trainable=False, name="unitb_pending")
            self.samples = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unitb_samples")
            # For tf.summary calls inside the model (tf_adapter.model_summaries): the step being
            # trained, and whether unitb records scalars at it (a mask set before each block).
            self.record_mask = tf.Variable(tf.zeros((self.window,), tf.bool), trainable=False,
                                           name="unitb_record_due")
            self.record = tf.Variable(False, trainable=False, name="unitb_record")
            self.summary_step = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unitb_summary_step")
        self.summary_writer = None  # opened by ModelSummaries, kept across fits
        self.summary_folder: Optional[str] = None
        self.summaries_in_graph = False  # the model (or a callback) made a tf.summary call
        self._due_now: List[bool] = [False] * self.window  # what mask / record_mask hold
        self._record_now: List[bool] = [False] * self.window
        strategy = model.distribute_strategy
        self.replicas = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
        try:
            self.local_replicas = max(1, len(strategy.extended.worker_devices)) if self.replicas > 1 else 1
        except (AttributeError, RuntimeError):
            self.local_replicas = 1
        self._call_picked: List[int] = list(range(len(self.picked)))
        self.armed = False
        # What the counter and the optimizer said when the last fit ended (see ``sync``).
        self.last_raw: Optional[int] = None
        self.last_counter: Optional[int] = None
        self._install()
        self._count_samples(model)

    # ------------------------------------------------------------------ graph
    def _first_local_replica(self) -> tf.Tensor:
        """True in one replica per process: the one that counts and measures."""
        if self.replicas == 1:
            return tf.constant(True)
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        return tf.equal(tf.cast(replica, tf.int32) % self.local_replicas, 0)

    def _install(self) -> None:
        outer = self.optimizer
        applier = applying_optimizer(outer)
        probe = self
        outer_apply = outer.apply

        @_plain
        def counting_apply(grads, trainable_variables=None):
            first = probe._first_local_replica()
            step = probe.counter + 1
            index = step - probe.mask_base - 1
            in_window = tf.logical_and(index >= 0, index < probe.window)
            due = tf.logical_and(in_window, tf.gather(probe.mask, tf.clip_by_value(index, 0, probe.window - 1)))

            # Plain arithmetic instead of tf.cond where it will do: every cond is a pair of
            # function graphs to build on each trace, i.e. start-up time of every fit().
            probe.pending.assign(tf.logical_or(probe.pending, tf.logical_and(due, first)))
            if probe.replicas > 1:
                # Traced once: the picked layers' positions in this call's variable list, which
                # the all-reduce (measuring_reduce) receives in the same order.
                probe._call_picked = probe._picked_in(list(trainable_variables) if trainable_variables is not None
                                                      else probe._variables)
            elif applier is outer:
                probe._measure(applier, list(grads), trainable_variables, step)
            result = outer_apply(grads, trainable_variables)

            # Counted only once the gradients exist. At the end of a dataset of unknown length
            # Keras runs its step function once more and the input ends inside it; ops that do
            # not wait for the data (Keras' own ``iterations`` among them) still run then, so a
            # counter without this dependency would count a step that trained on nothing.
            computed = [t for t in tf.nest.flatten(list(grads), expand_composites=True) if t is not None]
            with tf.control_dependencies(computed):
                probe.counter.assign_add(tf.cast(first, tf.int64))
            return result

        outer.apply = counting_apply
        if applier is not outer and self.replicas == 1:
            inner_apply = applier.apply

            @_plain
            def measuring_apply(grads, trainable_variables=None):
                probe._measure(applier, list(grads), trainable_variables, probe.counter + 1)
                return inner_apply(grads, trainable_variables)

            applier.apply = measuring_apply
        reduce = keras_internals.gradient_reducer(applier)
        if self.replicas > 1 and reduce is not None:
            @_plain
            def measuring_reduce(grads_and_vars):
                # Several replicas: each sees its own part of the batch; the update applies their
                # sum (after each replica's clipping), so measure what the all-reduce returns.
                reduced = reduce(grads_and_vars)
                pairs = list(reduced)
                probe._measure_reduced([g for g, _ in pairs], probe.counter + 1)
                return pairs

            keras_internals.replace_gradient_reducer(applier, measuring_reduce)
        setattr(outer, ATTRIBUTE, self)

    def _count_samples(self, model) -> None:
        """Samples trained on, counted in the graph (Keras tells callbacks no batch size):
        the leading dimension of the batch's first input, times the replicas in sync."""
        original_step = model.train_step
        probe = self

        @_plain
        def train_step(data):
            first = tf.nest.flatten(data)[0]
            count = tf.cast(tf.shape(first)[0], tf.int64) * probe.replicas
            probe.samples.assign_add(count * tf.cast(probe._first_local_replica(), tf.int64))
            # The step this iteration trains, and whether unitb records at it: read by the
            # tf.summary calls of the model and of the train step (plain arithmetic, no cond).
            step = probe.counter + 1
            index = step - probe.mask_base - 1
            in_window = tf.logical_and(index >= 0, index < probe.window)
            probe.summary_step.assign(step)
            probe.record.assign(tf.logical_and(in_window, tf.gather(
                probe.record_mask, tf.clip_by_value(index, 0, probe.window - 1))))
            return original_step(data)

        model.train_step = train_step

    def _picked_in(self, variables: List) -> List[int]:
        names = unique_names([measure.variable_name(v) for v in variables])
        index = {n: i for i, n in enumerate(names)}
        return [p for p in (index.get(self._paths[i], -1) for i in self.picked) if p >= 0]

    def _write_row(self, step, global_norm, pre_clip, layer_norms) -> None:
        values = tf.concat([[tf.cast(step, tf.float32), global_norm,
                             pre_clip if pre_clip is not None else -1.0], layer_norms], 0)
        width = self.norms.shape[1]
        if values.shape[0] < width:
            values = tf.pad(values, [[0, width - values.shape[0]]])
        slot = tf.cast(step % self.slots, tf.int32)
        self.norms.scatter_nd_update([[slot]], [values])
        self.pending.assign(False)

    def _measure(self, optimizer, grads: List, trainable_variables, step) -> None:
        variables = list(trainable_variables) if trainable_variables is not None else self._variables
        picked = self._picked_in(variables)
        accumulate = getattr(optimizer, "gradient_accumulation_steps", None)
        if accumulate:
            if not optimizer.built:  # as optimizer.apply would, so the accumulators exist
                optimizer.build(variables)
            is_update = tf.equal((keras_internals.micro_batches(optimizer) + 1) % accumulate, 0)
            accumulated = keras_internals.accumulated(optimizer, variables)
            applied = [None if g is None else (g + a) / accumulate for g, a in zip(grads, accumulated)]
        else:
            is_update = tf.constant(True)
            applied = grads

        def write():
            norms = measure.norms_in_graph(applied, picked)
            global_norm, pre_clip = measure.clipped_global(applied, norms, optimizer)
            self._write_row(step, global_norm, pre_clip, norms[1:])
            return tf.constant(True)

        tf.cond(tf.logical_and(self.pending, is_update), write, lambda: tf.constant(False))

    def _measure_reduced(self, grads: List, step) -> None:
        picked = self._call_picked

        def write():
            norms = measure.norms_in_graph(grads, picked)
            self._write_row(step, norms[0], None, norms[1:])
            return tf.constant(True)

        tf.cond(tf.logical_and(self.pending, self._first_local_replica()), write, lambda: tf.constant(False))

    # ------------------------------------------------------------------ host side
    def sync(self, restored_epoch_step: int) -> int:
        """The step the model is at now, at the start of a fit (after every callback's
        ``on_train_begin``, so after ``BackupAndRestore``). The counter continues across fits
        unless the optimizer's own count moved in a way unitb did not see: restored from a
        checkpoint, or trained with the wrapper out of the graph. Then it restarts from the
        optimizer's count, or from ``restored_epoch_step`` (``initial_epoch`` x steps) when
        the optimizer holds no count at all (weights restored without optimizer state)."""
        raw = raw_iterations(self.optimizer)
        counter = int(self.counter.numpy())
        if self.last_raw is not None and self.last_counter is not None:
            seen = counter - self.last_counter
            trustworthy = self.last_raw <= raw <= self.last_raw + seen
        else:
            trustworthy = counter == raw
        if not trustworthy or (raw == 0 and restored_epoch_step > counter):
            counter = raw if raw > 0 else max(restored_epoch_step, 0)
            self.counter.assign(counter)
        return counter

    def fit_ended(self) -> None:
        self.last_raw = raw_iterations(self.optimizer)
        self.last_counter = int(self.counter.numpy())
        self.disarm()

    def _set_masks(self, due: List[bool], record: List[bool]) -> None:
        """Assign a mask only when it changes: each assign is a host-to-device call, and with
        a scalar every step the masks stay the same from block to block."""
        if due != self._due_now:
            self.mask.assign(due)
            self._due_now = due
        if record != self._record_now:
            self.record_mask.assign(record)
            self._record_now = record

    def arm(self, base: int, due: List[bool], record: Optional[List[bool]] = None) -> None:
        """Mark which of the steps ``base+1 .. base+len(due)`` are due for gradient norms, and
        (``record``) at which the model's own tf.summary calls are recorded."""
        pad = [False] * self.window
        self._set_masks((list(due) + pad)[: self.window], (list(record or []) + pad)[: self.window])
        self.mask_base.assign(base)
        self.armed = True

    def disarm(self) -> None:
        if self.armed:
            self._set_masks([False] * self.window, [False] * self.window)
            self.armed = False

    def rows(self, after: int, upto: int) -> List[List[float]]:
        """Rows for steps ``after < step <= upto``, oldest first (one transfer)."""
        table = self.norms.numpy()
        found = {}
        for row in table:
            step = int(round(float(row[0])))
            if after < step <= upto:
                found[step] = row.tolist()
        return [found[s] for s in sorted(found)]


def probe_for(model, layer_limit: int, window: int) -> "GradProbe":
    """The model's probe, installed on first use. Installing drops a train function Keras
    traced before (a model fitted before unitb was attached), so the next fit traces the
    wrapped ``apply``: one retrace per model, never per fit."""
    probe = getattr(model.optimizer, ATTRIBUTE, None)
    if probe is None:
        probe = GradProbe(model, layer_limit, window)
        if getattr(model, "train_function", None) is not None:
            model.make_train_function(force=True)
    build_optimizer(model)
    return probe


def build_optimizer(model) -> None:
    """Create the optimizer's slot variables (Adam's moments …) before the train function is
    first traced. Keras otherwise creates them inside that trace, and TensorFlow then traces
    the whole train step a second time (variables created on the first call) — unitb's
    measuring branch included. Only for a built model: its variables are the ones ``apply``
    will receive."""
    optimizer = model.optimizer
    variables = list(model.trainable_variables)
    if getattr(optimizer, "built", True) or not getattr(model, "built", False) or not variables:
        return
    with model.distribute_strategy.scope():
        optimizer.build(variables)
