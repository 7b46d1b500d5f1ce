"""The outputs of one named module over validation, for the PROJECTOR (``embedding_layer=``).

A forward hook keeps the module's first output of each validation batch (a flip test runs the
model twice: the first pass counts), pooled over its spatial dimensions to one vector per
sample and copied to the host; the batch's input images become the sprite. At most
``MAX_POINTS`` samples a validation, so the projector files stay small.
"""
from __future__ import annotations

import difflib
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from torch_adapter.images import host_images

MAX_POINTS = 256
Warn = Callable[[str, str, str], None]


def pooled(output) -> Optional[np.ndarray]:
    """N x C from a module's output (the first tensor of a tuple/list/dict): spatial
    dimensions averaged away."""
    if isinstance(output, dict):
        output = next(iter(output.values()), None)
    while isinstance(output, (list, tuple)) and output:
        output = output[-1] if isinstance(output[-1], torch.Tensor) else output[0]  # a backbone's last stage
    if not isinstance(output, torch.Tensor) or output.ndim < 2:
        return None
    flat = output.detach().float()
    if flat.ndim > 2:
        flat = flat.mean(dim=tuple(range(2, flat.ndim)))
    return flat.cpu().numpy()


class LayerFeatures:
    def __init__(self, name: str) -> None:
        self.name = name
        self._handle = None
        self._pending: Optional[np.ndarray] = None
        self.features: List[np.ndarray] = []
        self.images: List[np.ndarray] = []
        self.labels: List[str] = []

    def start(self, model: torch.nn.Module, warn_once: Warn) -> None:
        self.features, self.images, self.labels, self._pending = [], [], [], None
        modules = dict(model.named_modules())
        module = modules.get(self.name)
        if module is None:
            close = difflib.get_close_matches(self.name, [n for n in modules if n], n=3)
            warn_once("embedding", self.name, f"embedding_layer={self.name!r} is not a module of the model"
                      + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "") + "; PROJECTOR skipped")
            return
        self._handle = module.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        if self._pending is None and self.count < MAX_POINTS:
            self._pending = pooled(output)

    @property
    def count(self) -> int:
        return sum(len(f) for f in self.features)

    def add_batch(self, data_batch, labels: Sequence[str]) -> None:
        """Pair the kept features with this batch's inputs (and a label per sample)."""
        batch, self._pending = self._pending, None
        if batch is None or not isinstance(data_batch, dict):
            return
        take = min(len(batch), MAX_POINTS - self.count)
        if take <= 0:
            return
        self.features.append(batch[:take])
        self.images.append(host_images(data_batch["inputs"], take))
        self.labels += [str(label) for label in list(labels)[:take]] + [""] * (take - len(labels))

    def finish(self) -> Optional[Tuple[np.ndarray, List[str], np.ndarray]]:
        """(features, labels, images) of the validation, or None; the hook is removed."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if not self.features:
            return None
        return np.concatenate(self.features), self.labels, np.concatenate(self.images)
