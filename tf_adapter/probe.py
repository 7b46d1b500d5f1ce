"""The in-graph side of TFCallback: a training-iteration counter and gradient norms of the
updates the optimizer really applies, written into a small ring read after the fact.

Why in the graph: under ``steps_per_execution`` Keras runs several iterations inside one
call, out of Python's sight, and under mixed precision / gradient accumulation only the
optimizer knows which gradients it applies. So ``optimizer.apply`` is wrapped once per
optimizer (shared by every TFCallback on the model, across fits):

- the outer optimizer's ``apply`` runs once per training iteration: it advances
  ``counter`` (iterations completed, the unitb step) and reads whether the step is due (flags
  the callback sets before each block). A plain optimizer on one replica measures the update
  right there; otherwise the step raises ``pending``;
- the optimizer that applies the update (``LossScaleOptimizer.inner_optimizer`` under
  ``mixed_float16``, else the optimizer itself) measures, while ``pending``, the first update
  it really applies: unscaled gradients (loss scaling), the accumulated gradient on the
  iteration that applies it (``gradient_accumulation_steps``), after clipping. A step the
  loss scaler skipped (inf/NaN) applies nothing, so nothing is measured there; the norm is
  taken at the next applied update, labelled with that update's step.

Rows are ``[step, pre-clip norm (-1: no clipping), applied global, layers...]`` at ``step %
slots``, the norms as half their squares (one ``L2Loss`` op a gradient; :meth:`GradProbe.rows`
takes the roots on the host).
"""
from __future__ import annotations

import weakref
from typing import List, Optional, Tuple

import numpy as np
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
        strategy = model.distribute_strategy
        self.replicas = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
        try:
            self.local_replicas = max(1, len(strategy.extended.worker_devices)) if self.replicas > 1 else 1
        except (AttributeError, RuntimeError):
            self.local_replicas = 1
        # Measured straight at the due step, unless the update may come later than the step
        # that was due: a loss-scaled step the scaler skips, an accumulated gradient's update
        # step, an all-reduce across replicas. Those raise ``pending`` and measure it there.
        applier = applying_optimizer(optimizer)
        self._direct = (applier is optimizer and self.replicas == 1
                        and not getattr(applier, "gradient_accumulation_steps", None))
        with tf.init_scope():
            # Plain (not distributed) variables: under tf.distribute only the first local replica
            # writes them, inside tf.cond, where a distributed variable's merge_call is not allowed.
            # Few of them: each is a handle to capture in every trace and an eager call to create.
            self.counter = tf.Variable(tf.constant(raw_iterations(optimizer), tf.int64), trainable=False,
                                       name="unitb_step")
            self.norms = tf.Variable(tf.zeros((self.slots, len(self.picked) + 3)), trainable=False,
                                     name="unitb_grad_norms")
            # What the callback planned for the block after step ``origin``: entry r says whether
            # step origin + r is due for gradient norms / records the model's summaries; entries
            # 0 and window + 1 stay False, so a step outside the block reads "no" after one clip.
            self.due_flags = tf.Variable(tf.zeros((self.window + 2,), tf.bool), trainable=False, name="unitb_due")
            self.record_flags = tf.Variable(tf.zeros((self.window + 2,), tf.bool), trainable=False,
                                            name="unitb_record_due")
            self.origin = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unitb_due_origin")
            self.pending = None if self._direct else tf.Variable(False, trainable=False, name="unitb_pending")
            self.samples = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unitb_samples")
            # For tf.summary calls inside the model (tf_adapter.model_summaries): the step being
            # trained, set in the graph where the model makes such a call (see ``recording``).
            self.summary_step = tf.Variable(tf.constant(0, tf.int64), trainable=False, name="unitb_summary_step")
        self.summary_writer = None  # opened by ModelSummaries, kept across fits
        self.summary_folder: Optional[str] = None
        self.summaries_in_graph = False  # the model (or a callback) made a tf.summary call
        self._due_now: List[bool] = [False] * self.window  # what due_flags / record_flags hold
        self._record_now: List[bool] = [False] * self.window
        # Per traced graph: the step its iteration trains (set by the train-step wrapper) and
        # whether model summaries record there (made once, on the graph's first summary call).
        self._step_in: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._record_in: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._updated_in: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
        self._call_picked: List[int] = list(range(len(self.picked)))
        self.armed = False
        # What the counter and the optimizer said when the last fit ended (see ``sync``).
        self.last_raw: Optional[int] = None
        self.last_counter: Optional[int] = None
        self._install()
        self._count_samples(model)

    # ------------------------------------------------------------------ graph
    # Every op made here is traced, then optimized by Grappler, at the start of each fit() of a
    # fresh model: the graph side is kept to few ops (no per-replica logic on one replica, one
    # read of the step for the whole iteration, the pending flag only where an update can come
    # later than its step).

    def _first_local_replica(self) -> Optional[tf.Tensor]:
        """True in one replica per process (the one that counts and measures); None on one replica."""
        if self.replicas == 1:
            return None
        context = tf.distribute.get_replica_context()
        replica = context.replica_id_in_sync_group if context is not None else 0
        return tf.equal(tf.cast(replica, tf.int32) % self.local_replicas, 0)

    def _flag(self, flags: tf.Variable, step) -> tf.Tensor:
        """``flags``' entry for ``step`` (False outside the armed block)."""
        return tf.gather(flags, tf.clip_by_value(step - self.origin, 0, self.window + 1))

    def _training_step(self, for_update: bool = False) -> tf.Tensor:
        """The step this iteration trains: the one the train-step wrapper read in this graph
        (for an update: only for the first, as a train step that applies twice counts twice)."""
        graph = tf.compat.v1.get_default_graph()
        step = self._step_in.get(graph)
        if for_update and step is not None:
            if graph in self._updated_in:
                step = None
            else:
                self._updated_in[graph] = True
        return step if step is not None else self.counter + 1

    def recording(self):
        """The record condition of the model's own ``tf.summary`` calls, and the moment their step
        is set: made once per traced graph, on its first summary call, so a model that makes no
        such call carries none of these ops. Eagerly (a callback's summary between steps): the
        step last trained."""
        if tf.executing_eagerly():
            step = self.counter.read_value()
            self.summary_step.assign(step)
            return self._flag(self.record_flags, step)
        graph = tf.compat.v1.get_default_graph()
        record = self._record_in.get(graph)
        if record is None:
            step = self._training_step()
            self.summary_step.assign(step)
            record = self._record_in[graph] = self._flag(self.record_flags, step)
        return record

    def _install(self) -> None:
        outer = self.optimizer
        applier = applying_optimizer(outer)
        probe = self
        outer_apply = outer.apply

        @_plain
        def counting_apply(grads, trainable_variables=None):
            first = probe._first_local_replica()
            step = probe._training_step(for_update=True)
            due = probe._flag(probe.due_flags, step)
            pending = probe.pending
            if pending is None:
                probe._measure_when(due, applier, list(grads), trainable_variables, step)
            else:
                pending.assign(tf.logical_or(pending, due if first is None else tf.logical_and(due, first)))
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
                probe.counter.assign_add(1 if first is None else tf.cast(first, tf.int64))
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
        the leading dimension of the batch's first input, times the replicas in sync. The
        wrapper also notes the step this iteration trains, for the model's summaries."""
        original_step = model.train_step
        probe = self

        @_plain
        def train_step(data):
            first_input = tf.nest.flatten(data)[0]
            count = _batch_size(first_input)
            replica = probe._first_local_replica()
            if replica is not None:
                count = count * probe.replicas * tf.cast(replica, tf.int64)
            probe.samples.assign_add(count)
            probe._step_in[tf.compat.v1.get_default_graph()] = probe.counter + 1
            return original_step(data)

        model.train_step = train_step

    def _picked_in(self, variables: List) -> List[int]:
        names = unique_names([measure.variable_name(v) for v in variables])
        index = {n: i for i, n in enumerate(names)}
        return [p for p in (index.get(self._paths[i], -1) for i in self.picked) if p >= 0]

    def _write_row(self, step, grads: List, picked, clipping: "measure.Clipping") -> None:
        """This update's row into the ring (inside the branch that found it due)."""
        _put_row(self.norms.handle, step, self.slots, _row(step, grads, picked, clipping, int(self.norms.shape[1])))

    def _measure_when(self, due, optimizer, grads: List, trainable_variables, step) -> None:
        """The row of this very update where ``due`` (the plain case: no pending flag), through
        the traced function every model with these gradient shapes shares."""
        variables = list(trainable_variables) if trainable_variables is not None else self._variables
        picked = tuple(self._picked_in(variables))
        _row_when_due(due, list(grads), step, self.norms.handle, picked,
                      measure.Clipping.of(optimizer), self.slots, int(self.norms.shape[1]))

    def _measure(self, optimizer, grads: List, trainable_variables, step) -> None:
        """The row of the first update applied while ``pending`` (not the direct case)."""
        pending = self.pending
        if pending is None:  # measured at the due step by counting_apply
            return
        variables = list(trainable_variables) if trainable_variables is not None else self._variables
        picked = self._picked_in(variables)
        accumulate = getattr(optimizer, "gradient_accumulation_steps", None)
        if accumulate:
            if not optimizer.built:  # as optimizer.apply would, so the accumulators exist
                optimizer.build(variables)
            is_update = tf.equal((keras_internals.micro_batches(optimizer) + 1) % accumulate, 0)
            accumulated = keras_internals.accumulated(optimizer, variables)
            applied = [None if g is None else (g + a) / accumulate for g, a in zip(grads, accumulated)]
            when = tf.logical_and(pending, is_update)
        else:
            applied = grads
            when = pending.read_value()

        def write():
            self._write_row(step, applied, picked, measure.Clipping.of(optimizer))
            pending.assign(False)
            return tf.constant(True)

        tf.cond(when, write, lambda: tf.constant(False))

    def _measure_reduced(self, grads: List, step) -> None:
        picked = self._call_picked
        pending = self.pending
        if pending is None:  # one replica: measured at the due step by counting_apply
            return

        def write():
            self._write_row(step, grads, picked, measure.Clipping())
            pending.assign(False)
            return tf.constant(True)

        tf.cond(tf.logical_and(pending, self._first_local_replica()), write, lambda: tf.constant(False))

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

    def _set_flags(self, due: List[bool], record: List[bool]) -> None:
        """Assign the flags only when they change: each assign is a host-to-device call, and
        with a scalar every step they stay the same from block to block."""
        if due != self._due_now:
            self.due_flags.assign([False] + due + [False])
            self._due_now = due
        if record != self._record_now:
            self.record_flags.assign([False] + record + [False])
            self._record_now = record

    def arm(self, base: int, due: List[bool], record: Optional[List[bool]] = None) -> None:
        """Mark which of the steps ``base+1 .. base+len(due)`` are due for gradient norms, and
        (``record``) at which the model's own tf.summary calls are recorded."""
        pad = [False] * self.window
        self._set_flags((list(due) + pad)[: self.window], (list(record or []) + pad)[: self.window])
        self.origin.assign(base)
        self.armed = True

    def disarm(self) -> None:
        if self.armed:
            self._set_flags([False] * self.window, [False] * self.window)
            self.armed = False

    def rows(self, after: int, upto: int) -> List[List[float]]:
        """Rows ``[step, applied global norm, pre-clip norm (-1: no clipping), layers...]`` for
        steps ``after < step <= upto``, oldest first (one transfer)."""
        table = self.norms.numpy()
        found = {}
        for row in table:
            step = int(round(float(row[0])))
            if after < step <= upto:
                norms = np.sqrt(2.0 * np.maximum(row[2:].astype(np.float64), 0.0))
                found[step] = [float(step), float(norms[0]), float(row[1]), *norms[1:].tolist()]
        return [found[s] for s in sorted(found)]


def _row(step, grads: List, picked, clipping: "measure.Clipping", width: int) -> tf.Tensor:
    """A ring row: ``[step, pre-clip norm or -1, applied global, layers...]``, the norms as half
    their squares (:meth:`GradProbe.rows` takes the roots), padded to ``width``."""
    halves = measure.half_squares(grads, picked)
    pre_clip = None
    if measure.clips(clipping):
        global_norm, pre_clip = measure.clipped_global(grads, tf.sqrt(2.0 * halves), clipping)
        halves = tf.concat([tf.reshape(0.5 * tf.square(global_norm), [1]), halves[1:]], 0)
    head = tf.stack([tf.cast(step, tf.float32), -1.0 if pre_clip is None else pre_clip])
    values = tf.concat([head, halves], 0)
    if values.shape[0] < width:
        values = tf.pad(values, [[0, width - values.shape[0]]])
    return values


def _put_row(rows, step, slots: int, values: tf.Tensor) -> None:
    """``values`` into slot ``step % slots`` of the ring variable behind the handle ``rows``:
    one scatter of one row (ResourceScatterUpdate takes a scalar index and a vector)."""
    tf.raw_ops.ResourceScatterUpdate(resource=rows, indices=tf.cast(step % slots, tf.int32), updates=values)


@_plain
def _write_row_when(due, grads: List, step, rows, picked: Tuple[int, ...], clipping: "measure.Clipping",
                    slots: int, width: int) -> tf.Tensor:
    """Where ``due``: this update's row into the ring variable behind the handle ``rows``."""
    def write():
        _put_row(rows, step, slots, _row(step, grads, picked, clipping, width))
        return tf.constant(True)

    return tf.cond(due, write, lambda: tf.constant(False))


# Traced once per gradient shapes, layer choice and clipping in a process, then called from each
# train step that needs it: a second model of the same architecture (a sweep's next trial, a
# notebook's re-run), and the second trace Keras' steps_per_execution loop makes of its body,
# skip tracing the measuring branch again. Variables go in as handles, so no model's are kept.
_row_when_due = tf.function(_write_row_when, autograph=False)
try:  # a new architecture traces anew by design; keep TF's "retracing" warning for real bugs
    _row_when_due._omit_frequent_tracing_warning = True  # type: ignore[attr-defined]
except AttributeError:
    pass


def _batch_size(batch) -> tf.Tensor:
    """The leading dimension of ``batch`` as int64, in as few ops as its static shape allows."""
    rest = batch.shape[1:]
    if rest.is_fully_defined() and rest.num_elements():
        return tf.size(batch, out_type=tf.int64) // rest.num_elements()
    return tf.shape(batch, out_type=tf.int64)[0]


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
