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
from typing import List, Optional, Sequence

import numpy as np

from unitb import schema

MAX_POINTS = 256


def _inputs_of(model):
    """A one-input model's input as itself, not a list of one (Keras warns when a list-shaped
    model is called on a plain tensor)."""
    inputs = list(model.inputs)
    return inputs[0] if len(inputs) == 1 else inputs


class LayerOutputs:
    """The named layers' outputs on given inputs, through a model that shares the trained one's
    layers (built at the first read, kept); after a failure it reads nothing more, and the one
    warning names the option and, for a name the model lacks, the closest names it has."""

    def __init__(self, option: str, names: Sequence[str]) -> None:
        self.option = option
        self.names = tuple(names)
        self._extractor = None
        self.failed = False

    def read(self, callback, model, x, skipped: str) -> Optional[List[np.ndarray]]:
        """float32 arrays, one per name; None after a failure (``skipped`` says what is not logged)."""
        if self.failed:
            return None
        try:
            if self._extractor is None:
                import keras

                self._extractor = keras.Model(_inputs_of(model), [model.get_layer(name).output for name in self.names])
            values = self._extractor(x, training=False)
            values = values if isinstance(values, (list, tuple)) else [values]
            return [np.asarray(value, dtype=np.float32) for value in values]
        except Exception as exc:
            self.failed = True
            known = [layer.name for layer in getattr(model, "layers", [])]
            missing = [name for name in self.names if name not in known]
            close = difflib.get_close_matches(missing[0], known, n=3) if missing else []
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            shown = self.names[0] if len(self.names) == 1 else list(self.names)
            callback.run.warn_once(self.option, "read", f"{self.option}={shown!r}: could not read the outputs "
                                   f"({type(exc).__name__}: {exc}){hint}; {skipped}")
            return None


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
        self._outputs = LayerOutputs("embedding_layer", [layer])

    def log(self, callback, model, step: int) -> None:
        read = self._outputs.read(callback, model, self.x, "PROJECTOR skipped")
        if read is None:
            return
        out = read[0]
        features = out.reshape(len(out), -1, out.shape[-1]).mean(axis=1) if out.ndim > 2 else out.reshape(len(out), -1)
        images = self.x if self.x.ndim in (3, 4) else None
        callback.log_embedding(schema.VAL_FEATURES, features, metadata=self.labels, images=images, step=step)


class LayerActivations:
    """``activation_layers=`` for Keras: histograms of the named layers' outputs on the callback's
    ``image_data`` (``activations/{layer}``), at the steps gradient norms are written. Keras' train
    step does not hand out intermediate outputs, so they come from one more forward pass of
    those inputs through a model sharing the trained layers (in inference mode)."""

    def __init__(self, layers, data) -> None:
        self.layers = tuple(layers)
        self.x = None if data is None else np.asarray(data)
        self._outputs = LayerOutputs("activation_layers", self.layers)

    def log(self, callback, model, step: int) -> None:
        if self.x is None:
            if not self._outputs.failed:
                self._outputs.failed = True
                callback.run.warn_once("activations", "data", "activation_layers needs image_data on TFCallback "
                                       "(the inputs the activations are taken on); activations are not logged")
            return
        values = self._outputs.read(callback, model, self.x, "activations are not logged")
        if values is not None:
            callback.run.histograms(schema.activations_histogram, step,
                                    {name: value.reshape(-1) for name, value in zip(self.layers, values)})
