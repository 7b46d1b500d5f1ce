"""``activation_layers=``: histograms of chosen modules' outputs (``activations/{layer}``),
taken by forward hooks in the training forward of the steps gradient norms are measured at
(``grad_norm_interval``), so activations and gradients of a step sit side by side.

Outside those steps a hook returns at its first check. A step's output is flattened, thinned
on the device to at most ``MAX_VALUES`` values (an even stride) and copied once; the
histogram itself is bucketed on the writer thread like every other.
"""
from __future__ import annotations

import difflib
import functools
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

MAX_VALUES = 1 << 20
Warn = Callable[[str, str, str], None]


def first_tensor(output) -> Optional[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


class ActivationProbe:
    def __init__(self, model: torch.nn.Module, names: Sequence[str], warn_once: Warn) -> None:
        modules = dict(model.named_modules())
        missing = [name for name in names if name not in modules]
        if missing:
            hints = {name: difflib.get_close_matches(name, [n for n in modules if n], n=2) for name in missing}
            warn_once("activations", ",".join(missing), "activation_layers: not modules of the model: " + ", ".join(
                f"{name!r}" + (f" (did you mean {', '.join(map(repr, hints[name]))}?)" if hints[name] else "")
                for name in missing) + "; the others are logged")
        self.armed = False
        self.arrays: Dict[str, torch.Tensor] = {}
        self.names = [name for name in names if name in modules]
        self._warn = warn_once
        self._handles = [modules[name].register_forward_hook(functools.partial(self._keep, name))
                         for name in self.names]

    def _keep(self, name: str, module: torch.nn.Module, inputs, output) -> None:
        if not self.armed or not module.training or name in self.arrays:
            return
        tensor = first_tensor(output)
        if tensor is None or not tensor.is_floating_point():
            return
        flat = tensor.detach().reshape(-1)
        if flat.numel() > MAX_VALUES:
            flat = flat[:: -(-flat.numel() // MAX_VALUES)]
        self.arrays[name] = flat.float()  # still on the device: copied at the end of the step

    def take(self) -> Dict[str, np.ndarray]:
        """The step's activations on the host (one copy per layer), and disarm."""
        arrays, self.arrays, self.armed = self.arrays, {}, False
        silent = [name for name in self.names if name not in arrays]
        if silent:  # e.g. mmpose heads: their forward() is called directly, which forward hooks never see
            self._warn("activations", "silent", "activation_layers: no training output was seen from "
                       + ", ".join(map(repr, silent)) + " (a module whose forward() its parent calls directly is "
                       "invisible to forward hooks: name a submodule it calls, e.g. 'head.final_layer')")
        return {name: tensor.cpu().numpy() for name, tensor in arrays.items()}

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
