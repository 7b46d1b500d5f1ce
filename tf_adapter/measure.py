"""Native TensorFlow/Keras measurements: in-graph gradient norms, LR, model statistics."""
from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

import keras

from tf_adapter import keras_internals
from unitb import schema
from unitb.life.layers import select_layers, unique_names


def variable_name(variable, model_name: Optional[str] = None) -> str:
    """Keras 3 ``path`` (``dense/kernel``) or TF ``name`` (``dense/kernel:0``), dotted.

    A leading ``{model_name}/`` (Sequential models put it there) is dropped, as PyTorch
    names do not carry the model's name either.
    """
    path = getattr(variable, "path", None) or variable.name
    if model_name and path.startswith(f"{model_name}/"):
        path = path[len(model_name) + 1:]
    return schema.layer_name(path)


def dense_grad(grad):
    if isinstance(grad, tf.IndexedSlices):
        return tf.convert_to_tensor(grad)
    return grad


def half_squares(grads: Sequence, picked: Sequence[int]) -> tf.Tensor:
    """[sum over all gradients, picked gradients...] of half the squared L2 norm, float32.

    One op a gradient (``L2Loss``) serves both the global norm and the picked layers: in a
    Keras fit every op here is traced and optimized at the fit's start, so the square roots
    are left to whoever reads the values (:func:`norms_in_graph`, or the host). ``None``
    gradients count as zero.
    """
    positions = [i for i, g in enumerate(grads) if g is not None]
    if not positions:
        return tf.zeros([1 + len(picked)])
    halves = tf.stack([tf.nn.l2_loss(tf.cast(dense_grad(grads[i]), tf.float32)) for i in positions])
    total = tf.reduce_sum(halves, keepdims=True)
    if not picked:
        return total
    present = {p: k for k, p in enumerate(positions)}
    if all(p in present for p in picked):
        rows = [present[p] for p in picked]
        layers = halves if rows == list(range(len(positions))) else tf.gather(halves, rows)
    else:
        layers = tf.stack([halves[present[p]] if p in present else tf.constant(0.0) for p in picked])
    return tf.concat([total, layers], 0)


def norms_in_graph(grads: Sequence, picked: Sequence[int]) -> tf.Tensor:
    """[global L2 norm, norms of the picked gradients...] as one float32 vector. Works eagerly
    and inside ``tf.function``."""
    return tf.sqrt(2.0 * half_squares(grads, picked))


class Clipping(NamedTuple):
    """How Keras clips an optimizer's gradients; hashable, so it can key a traced function."""

    global_clipnorm: Optional[float] = None
    clipnorm: Optional[float] = None
    clipvalue: Optional[float] = None

    @classmethod
    def of(cls, optimizer) -> "Clipping":
        def setting(name: str) -> Optional[float]:
            value = getattr(optimizer, name, None)
            return float(value) if value else None
        return cls(setting("global_clipnorm"), setting("clipnorm"), setting("clipvalue"))


def clips(optimizer) -> bool:
    """Whether Keras clips the optimizer's gradients (``global_clipnorm``, ``clipnorm``, ``clipvalue``)."""
    return any(getattr(optimizer, name, None) for name in Clipping._fields)


def clipped_global(grads: Sequence, norms: tf.Tensor, optimizer) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """The global norm of the gradients as Keras applies them after its own clipping
    (``global_clipnorm``, ``clipnorm`` per variable, ``clipvalue``), and the pre-clip norm
    when the optimizer clips (``None`` otherwise). ``norms[0]`` is the pre-clip norm."""
    present = [tf.cast(dense_grad(g), tf.float32) for g in grads if g is not None]
    global_clip = getattr(optimizer, "global_clipnorm", None)
    clipnorm = getattr(optimizer, "clipnorm", None)
    clipvalue = getattr(optimizer, "clipvalue", None)
    if global_clip:
        return tf.minimum(norms[0], float(global_clip)), norms[0]
    if clipnorm:
        each = tf.stack([tf.minimum(tf.norm(g), float(clipnorm)) for g in present])
        return tf.norm(each), norms[0]
    if clipvalue:
        clipped = [tf.clip_by_value(g, -float(clipvalue), float(clipvalue)) for g in present]
        return tf.linalg.global_norm(clipped), norms[0]
    return norms[0], None


def model_stats(model) -> Tuple[int, int, float]:
    total = int(sum(int(np.prod(v.shape)) for v in model.weights))
    trainable = int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
    size = sum(int(np.prod(v.shape)) * np.dtype(_np_dtype(v)).itemsize for v in model.weights)
    return total, trainable, size / (1024 * 1024)


def _np_dtype(variable) -> str:
    dtype = getattr(variable, "dtype", "float32")
    return getattr(dtype, "name", str(dtype)).replace("bfloat16", "float16")


def learning_rate_value(optimizer, iteration: int):
    """The LR for the update made at ``iteration`` (0-based), as the optimizer holds it (a
    variable, a tensor from a schedule evaluated there, or a number); None without one."""
    lr = keras_internals.learning_rate_source(optimizer)
    if lr is None:
        return None
    if callable(lr) and not isinstance(lr, tf.Variable):
        lr = lr(iteration)
    return lr


def learning_rate_at(optimizer, iteration: int) -> Optional[float]:
    """:func:`learning_rate_value` as a float: a schedule is evaluated at ``iteration``, so the
    value does not depend on when the caller runs."""
    try:
        return float(np.asarray(learning_rate_value(optimizer, iteration)))
    except (TypeError, ValueError):
        return None


class MetricsFetch:
    """``model.get_metrics_result()`` plus the LR of an iteration (and the dynamic loss scale
    under mixed precision), computed in one traced call and brought to the host in one
    transfer. Falls back to the eager path (with a single transfer, :func:`to_host`) for
    metrics whose results are not all scalars. One per model (:meth:`for_model`): a sweep
    that fits many models traces it once per model, which is expected, not a retracing bug."""

    LR = "\x00lr"
    LOSS_SCALE = "\x00loss_scale"
    EAGER_CALLS = 4  # a fit that logs a handful of points never pays the trace (~30-150 ms)

    def __init__(self, model, with_lr: bool = True):
        self.model, self.with_lr = model, with_lr
        self.keys: Optional[List[str]] = None
        self._traced = tf.function(self._stacked, autograph=False)
        try:  # one trace per model is by design; keep TF's "retracing" warning for real bugs
            self._traced._omit_frequent_tracing_warning = True
        except AttributeError:
            pass
        self._eager = False
        self._calls = 0

    @classmethod
    def for_model(cls, model, with_lr: bool = True) -> "MetricsFetch":
        cached = getattr(model, "_unitb_metrics_fetch", None)
        if cached is None or cached.with_lr != with_lr:
            cached = cls(model, with_lr)
            model._unitb_metrics_fetch = cached
        return cached

    def _extras(self, iteration) -> Dict[str, object]:
        extras: Dict[str, object] = {}
        optimizer = self.model.optimizer
        if self.with_lr:
            lr = learning_rate_value(getattr(optimizer, "inner_optimizer", None) or optimizer, iteration)
            if lr is not None:
                extras[self.LR] = lr
        scale = getattr(optimizer, "dynamic_scale", None)
        if scale is not None:
            extras[self.LOSS_SCALE] = scale
        return extras

    def _stacked(self, iteration):
        logs = dict(self.model.get_metrics_result())
        logs.update(self._extras(iteration))
        if not all(_scalar_tensor(v) or isinstance(v, (int, float)) for v in logs.values()):
            raise _NotScalars()
        self.keys = list(logs)
        return tf.stack([tf.cast(v, tf.float64) for v in logs.values()])

    def __call__(self, iteration: int) -> Dict[str, object]:
        self._calls += 1
        if not self._eager and self._calls > self.EAGER_CALLS:
            try:
                values = self._traced(tf.constant(iteration, tf.int64)).numpy()
                return {k: float(v) for k, v in zip(self.keys or [], values)}
            except _NotScalars:
                self._eager = True
        logs = dict(self.model.get_metrics_result())
        logs.update(self._extras(iteration))
        return to_host(logs)


class _NotScalars(Exception):
    pass


def precision_policy(model) -> str:
    """The model's mixed-precision policy name (``float32``, ``mixed_float16`` …)."""
    policy = getattr(model, "dtype_policy", None)
    name = getattr(policy, "name", None)
    if name is None:
        name = keras.mixed_precision.global_policy().name
    return str(name)


def optimizer_settings(optimizer) -> Dict[str, object]:
    """The optimizer's config as ``optimizer.{key}`` (plain values; a schedule as its class;
    settings left at None — no clipping, no weight decay — are not settings and are left out)."""
    try:
        config = optimizer.get_config()
    except Exception:
        return {}
    out: Dict[str, object] = {}
    for key, value in config.items():
        if key in ("name", "learning_rate"):
            continue
        if isinstance(value, dict) and "class_name" in value:
            value = value["class_name"]  # a learning-rate schedule: its class, not its whole config
        if isinstance(value, (bool, int, float, str, tuple, list)):
            out[f"optimizer.{key}"] = value
    return out


def _scalar_tensor(value) -> bool:
    if not (tf.is_tensor(value) or isinstance(value, tf.Variable)) or len(value.shape) != 0:
        return False
    dtype = tf.as_dtype(value.dtype)
    return dtype.is_floating or dtype.is_integer


def to_host(values: Dict[str, object]) -> Dict[str, object]:
    """Bring the scalar tensors of ``values`` to the host in ONE transfer (each separate
    ``float(tensor)`` is its own device sync and eager op: ~0.2 ms apiece in a fit loop).
    Anything else is passed through unchanged for the run logger to judge."""
    keys = [k for k, v in values.items() if _scalar_tensor(v)]
    if len(keys) < 2:
        return dict(values)
    host = tf.stack([tf.cast(values[k], tf.float64) for k in keys]).numpy()
    out = dict(values)
    out.update({k: float(x) for k, x in zip(keys, host)})
    return out


def pick_layers(variables: Sequence, limit: int, model_name: Optional[str] = None) -> Tuple[List[int], List[str]]:
    names = unique_names([variable_name(v, model_name) for v in variables])
    picked = select_layers(names, limit)
    return picked, [names[i] for i in picked]


def weight_arrays(variables: Sequence, picked: Sequence[int], names: Sequence[str]) -> Dict[str, np.ndarray]:
    """Host copies of the picked variables, keyed by the names ``pick_layers`` gave them."""
    return {name: np.asarray(variables[i].numpy()) for i, name in zip(picked, names)}


def device_peak_mb() -> Optional[float]:
    """Peak memory on the first GPU since the last call, in MiB; None without a GPU."""
    try:
        if not tf.config.list_physical_devices("GPU"):
            return None
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        tf.config.experimental.reset_memory_stats("GPU:0")
        return peak / 2 ** 20
    except (ValueError, RuntimeError, KeyError):
        return None


def is_chief() -> bool:
    """False on non-chief workers of a multi-worker strategy; True in a single process."""
    task_type, task_id, cluster = task_in_cluster()
    if task_type in (None, "chief"):
        return True
    if task_type == "worker":
        return "chief" not in cluster and task_id == 0
    return False


def task_in_cluster() -> Tuple[Optional[str], int, Dict[str, list]]:
    """This process's task type and index in its cluster, and the cluster (None, 0, {} alone).

    Asks the strategy in scope, and else ``TF_CONFIG`` (what MultiWorkerMirroredStrategy reads
    too): a logger is often built outside ``strategy.scope()``, where ``get_strategy()`` is the
    default one and knows no cluster."""
    try:
        resolver = getattr(tf.distribute.get_strategy(), "cluster_resolver", None)
    except Exception:
        resolver = None
    task_type = getattr(resolver, "task_type", None)
    if task_type is None:
        return _tf_config_task()
    return task_type, int(getattr(resolver, "task_id", 0) or 0), resolver.cluster_spec().as_dict()


def _tf_config_task():
    import json
    import os

    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError:
        return None, 0, {}
    task = config.get("task") or {}
    return task.get("type"), int(task.get("index", 0) or 0), config.get("cluster") or {}
