"""The one place where unitb reaches into TensorFlow's private names.

- ``gen_summary_ops.write_raw_proto_summary`` on a writer's ``_resource``: a step's serialized
  scalars written eagerly in ~24 µs, against ~130 µs for ``tf.summary.experimental.write_raw_pb``
  inside its own ``as_default()`` (measured in benchmarks/). A writer without a resource handle
  goes through the public call instead.

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
    if writer is not None and writer_resource(writer) is None:
        missing.append("a tf.summary writer's _resource")
    return missing
