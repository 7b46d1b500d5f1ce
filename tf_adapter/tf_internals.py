"""The one place where unitb reaches into TensorFlow's private names.

- ``gen_summary_ops.write_raw_proto_summary`` on a writer's ``_resource``: a step's serialized
  scalars written eagerly in ~24 µs, against ~130 µs for ``tf.summary.experimental.write_raw_pb``
  inside its own ``as_default()`` (measured in benchmarks/). A writer without a resource handle
  goes through the public call instead.
- the eager context's ``coordination_service`` and its key-value calls
  (``set_config_key_value``, ``get_config_key_value``, ``delete_config_key_value``): the store
  every worker of a multi-worker strategy joins, which carries each worker's ``system/*``
  figures to the chief (``tf_adapter/node_link.py``) without a collective.

Checked against :data:`CHECKED_VERSIONS`; :func:`missing_internals` lists what is absent from
the installed TensorFlow, and ``tests/test_library_fences.py`` fails naming it.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import tensorflow as tf

CHECKED_VERSIONS: Dict[str, Sequence[str]] = {"tensorflow": ("2.21.0",)}


def writer_resource(writer) -> Optional[object]:
    """The resource handle of a ``tf.summary`` file writer, or None."""
    return getattr(writer, "_resource", None)


def write_raw(resource, step: int, summary: bytes) -> None:
    """Write one serialized ``Summary`` at ``step`` through the writer's resource, eagerly."""
    from tensorflow.python.ops import gen_summary_ops  # the raw op behind write_raw_pb

    gen_summary_ops.write_raw_proto_summary(resource, tf.constant(step, tf.int64), tf.constant(summary))


KEY_VALUE_CALLS = ("set_config_key_value", "get_config_key_value", "delete_config_key_value")


def coordination_store() -> Optional[object]:
    """The eager context, when a multi-worker strategy's coordination service (and its
    key-value store) is up; else None."""
    from tensorflow.python.eager import context

    current = context.context()
    return current if getattr(current, "coordination_service", None) is not None else None


def store_set(store, key: str, value: str, replace: bool) -> None:
    """Set ``key``; ``replace``: it was set before (the service refuses to overwrite a key)."""
    if replace:
        store.delete_config_key_value(key)
    store.set_config_key_value(key, value)


def store_get(store, key: str, wait_ms: int) -> Optional[str]:
    """``key``'s value, or None when it is not set within ``wait_ms``."""
    try:
        return str(store.get_config_key_value(key, wait_ms))
    except (tf.errors.DeadlineExceededError, tf.errors.NotFoundError):
        return None


def missing_internals(writer=None) -> List[str]:
    """What this module relies on that the installed TensorFlow lacks; ``writer``: a
    ``tf.summary`` file writer to look at as well."""
    missing = []
    try:
        from tensorflow.python.ops import gen_summary_ops
        if not callable(getattr(gen_summary_ops, "write_raw_proto_summary", None)):
            missing.append("gen_summary_ops.write_raw_proto_summary")
    except ImportError:
        missing.append("tensorflow.python.ops.gen_summary_ops")
    try:
        from tensorflow.python.eager import context
        if not hasattr(context.Context, "coordination_service"):
            missing.append("Context.coordination_service")
        missing += [f"Context.{name}" for name in KEY_VALUE_CALLS if not callable(getattr(context.Context, name, None))]
    except ImportError:
        missing.append("tensorflow.python.eager.context")
    if writer is not None and writer_resource(writer) is None:
        missing.append("a tf.summary writer's _resource")
    return missing
