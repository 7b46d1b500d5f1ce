"""The model's graph in TensorBoard's GRAPHS tab from the TensorFlow side, off by default
(``log_graph``).

Both ``TFCallback`` (at the start of a fresh run's first fit) and ``TFLogger`` (at its first
logged step) write the graph of the model's forward pass, traced once from the model's input
signature. Keras' own callback tries the train function's graph instead, which Keras 3 no longer
exposes as a ``tf.function`` (its ``write_graph`` writes nothing there). A model that cannot be
traced (a subclassed model without known inputs) gets one warning; training goes on.
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

WarnOnce = Callable[[str, str, str], None]


def write_model_graph(sink, model, warn_once: WarnOnce) -> None:
    """The graph of ``model``'s forward pass from its input signature."""
    try:
        inputs = getattr(model, "inputs", None)
        if not inputs:
            raise ValueError("the model has no known inputs (build it, or give it a keras.Input)")
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in inputs]
        function = tf.function(lambda *args: model(list(args) if len(args) > 1 else args[0], training=False))
        sink.write_graph(function.get_concrete_function(*specs).graph)
    except Exception as exc:
        warn_once("graph", "", f"log_graph: could not trace the model ({type(exc).__name__}: {exc}); graph skipped")
