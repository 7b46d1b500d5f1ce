"""unitb: one TensorBoard event schema and interval policy for PyTorch and TensorFlow.

The core (this package) imports neither torch nor tensorflow. The framework entry points
live in the adapters and are loaded on first use::

    unitb.EnhancedTensorBoardHook   # torch_adapter (mmengine hook)
    unitb.TorchLogger               # torch_adapter (plain PyTorch loops)
    unitb.TFCallback                # tf_adapter (model.fit)
    unitb.TFLogger                  # tf_adapter (custom TF loops)
    unitb.CheckpointManager         # tf_adapter (resume without duplicate steps)
"""
from __future__ import annotations

import importlib
from typing import Any

from unitb import schema
from unitb.policy import DenseThenSparse, EveryNEpochs, EveryNSteps
from unitb.run_logger import RunLogger
from unitb.notices import UnitbWarning

__version__ = "0.1.0"

_LAZY = {
    "EnhancedTensorBoardHook": "torch_adapter",
    "TorchLogger": "torch_adapter",
    "TFCallback": "tf_adapter",
    "TFLogger": "tf_adapter",
    "CheckpointManager": "tf_adapter",
}

__all__ = ["schema", "RunLogger", "UnitbWarning", "EveryNSteps", "EveryNEpochs", "DenseThenSparse", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unitb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
