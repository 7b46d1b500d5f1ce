"""The model's graph in TensorBoard's GRAPHS tab, traced once with ``torch.jit.trace`` (what
``SummaryWriter.add_graph`` does), off by default (``log_graph``).

``TorchLogger`` never sees the model's inputs, so with ``log_graph=True`` a forward pre-hook keeps
one sample of the first batch the model is called with (:class:`FirstInput`); the graph is traced
from it at the next logged step and the hook is removed. A model that cannot be traced gets one
warning; training goes on.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from torch_adapter import measure

WarnOnce = Callable[[str, str, str], None]


def write_module_graph(sink, module: torch.nn.Module, inputs, warn_once: WarnOnce) -> None:
    """Trace ``module`` on ``inputs`` into the sink's GRAPHS record; one warning if it cannot."""
    try:
        sink.write_graph(module, inputs)
    except Exception as exc:
        warn_once("graph", "", f"log_graph: could not trace the model ({type(exc).__name__}: {exc}); graph skipped")


def _first_sample(value):
    """One sample of a batch (a tensor, or a tuple/list of them), detached, for tracing."""
    if isinstance(value, torch.Tensor):
        return value[:1].detach() if value.dim() > 0 else value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_first_sample(v) for v in value)
    return value


class FirstInput:
    """Keeps the positional inputs of the model's first forward call (one sample of them)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = measure.unwrap_model(model)
        self.inputs: Optional[tuple] = None
        self._handle = self.model.register_forward_pre_hook(self._keep)

    def _keep(self, _module, args) -> None:
        if self.inputs is None and args:
            self.inputs = tuple(_first_sample(a) for a in args)
            self.remove()

    def remove(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def write(self, sink, warn_once: WarnOnce) -> bool:
        """Trace and write the graph once the inputs are known; True when done (or given up)."""
        if self.inputs is None:
            return False
        inputs = self.inputs[0] if len(self.inputs) == 1 else self.inputs
        write_module_graph(sink, self.model, inputs, warn_once)
        self.inputs = None
        return True
