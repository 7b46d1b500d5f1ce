"""Named Keras layers' outputs: ``embedding_layer=`` and ``activation_layers=``.

``embedding_layer=`` for Keras: the named layer's outputs on ``embedding_data`` in the
PROJECTOR as ``val/features``, at the weight-histogram interval (epochs).

The layer's output is read through a second Keras model that shares the trained one's layers
(so only a functional or sequential model with that layer on its path works; another gets one
warning); spatial dimensions are averaged to one vector per sample, and the inputs become the
sprite when they are images.
"""
from __future__ import annotations

import difflib
from typing import Optional

import numpy as np

from unitb import schema

MAX_POINTS = 256


def _inputs_of(model):
    """A one-input model's input as itself, not a list of one (Keras warns when a list-shaped
    model is called on a plain tensor)."""
    inputs = list(model.inputs)
    return inputs[0] if len(inputs) == 1 else inputs


class LayerEmbedding:
    def __init__(self, layer: str, data) -> None:
        if data is None:
            raise ValueError("embedding_layer needs embedding_data: validation inputs x, or (x, labels)")
        x, labels = (data if isinstance(data, tuple) and len(data) == 2 else (data, None))
        self.layer = layer
        self.x = np.asarray(x)[:MAX_POINTS]
        self.labels = None if labels is None else [str(label) for label in list(labels)[:MAX_POINTS]]
        if self.labels is not None and len(self.labels) != len(self.x):
            raise ValueError(f"embedding_data: {len(self.x)} inputs but {len(self.labels)} labels")
        self._extractor = None
        self._failed = False

    def log(self, callback, model, step: int) -> None:
        features = self._features(callback, model)
        if features is None:
            return
        images = self.x if self.x.ndim in (3, 4) else None
        callback.log_embedding(schema.VAL_FEATURES, features, metadata=self.labels, images=images, step=step)

    def _features(self, callback, model) -> Optional[np.ndarray]:
        if self._failed:
            return None
        try:
            if self._extractor is None:
                import keras

                self._extractor = keras.Model(_inputs_of(model), model.get_layer(self.layer).output)
            out = np.asarray(self._extractor(self.x, training=False), dtype=np.float32)
        except Exception as exc:
            self._failed = True
            names = [layer.name for layer in getattr(model, "layers", [])]
            close = difflib.get_close_matches(self.layer, names, n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close and self.layer not in names else ""
            callback.run.warn_once("embedding", self.layer, f"embedding_layer={self.layer!r}: could not read its "
                                   f"outputs ({type(exc).__name__}: {exc}){hint}; PROJECTOR skipped")
            return None
        return out.reshape(len(out), -1, out.shape[-1]).mean(axis=1) if out.ndim > 2 else out.reshape(len(out), -1)


class LayerActivations:
    """``activation_layers=`` for Keras: histograms of the named layers' outputs on the callback's
    ``image_data`` (``activations/{layer}``), at the steps gradient norms are written. Keras' train
    step does not hand out intermediate outputs, so they come from one more forward pass of
    those inputs through a model sharing the trained layers (in inference mode)."""

    def __init__(self, layers, data) -> None:
        self.layers = tuple(layers)
        self.x = None if data is None else np.asarray(data)
        self._extractor = None
        self._failed = False

    def log(self, callback, model, step: int) -> None:
        if self._failed:
            return
        if self.x is None:
            self._failed = True
            callback.run.warn_once("activations", "data", "activation_layers needs image_data on TFCallback (the "
                                   "inputs the activations are taken on); activations are not logged")
            return
        try:
            if self._extractor is None:
                import keras

                outputs = [model.get_layer(name).output for name in self.layers]
                self._extractor = keras.Model(_inputs_of(model), outputs)
            values = self._extractor(self.x, training=False)
            values = values if isinstance(values, (list, tuple)) else [values]
        except Exception as exc:
            self._failed = True
            callback.run.warn_once("activations", "layers", f"activation_layers={list(self.layers)}: could not read "
                                   f"their outputs ({type(exc).__name__}: {exc}); activations are not logged")
            return
        arrays = {name: np.asarray(value, dtype=np.float32).reshape(-1) for name, value in zip(self.layers, values)}
        callback.run.histograms(schema.activations_histogram, step, arrays)
