"""The framework-free core: one TensorBoard event schema and interval policy for PyTorch and TensorFlow.

The core (this package) imports neither torch nor tensorflow. The framework entry points
live in the adapters and are loaded on first use::

    unitb.EnhancedTensorBoardHook   # torch_adapter (mmengine hook)
    unitb.TorchLogger               # torch_adapter (plain PyTorch loops)
    unitb.TFCallback                # tf_adapter (model.fit)
    unitb.TFLogger                  # tf_adapter (custom TF loops)
    unitb.CheckpointManager         # tf_adapter (resume without duplicate steps)

Beside them: :mod:`unitb.schema` (every tag), :mod:`unitb.reader` (runs read back),
:mod:`unitb.resume` (what a resume set aside, and putting it back), :func:`sweep_params` (a
sweep's trial parameters inside a trial), :func:`alert` (a word to the team, through the run's
``alerts=`` channels), :func:`runs` and :func:`scalars` (any runs as tables, PyTorch and
TensorFlow together: :mod:`unitb.query`), :class:`UnitbWarning` (every
problem unitb works around) and :class:`FolderBusy` (a resume refused while another process
writes the run). The rooms below (``files``, ``read``, ``query``, ``write``, ``folder``, ``backends``,
``store``, ``life``, ``sweep``, ``commands``) are the implementation; docs/DESIGN.md draws them.
"""
from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

from unitb import reader, schema
from unitb.notices import UnitbWarning

if TYPE_CHECKING:  # what editors and mypy see of the lazy names below
    from unitb import resume as resume
    from unitb.folder.claim import FolderBusy as FolderBusy
    from unitb.life.alerts import alert as alert
    from unitb.life.sweep_trial import sweep_params as sweep_params
    from unitb.query.tables import runs as runs, scalars as scalars

__version__ = "0.1.0"

# Loaded on first use: the adapters (their framework), and whatever the `unitb` command's reading
# does not need (alerts load http.client, a tenth of the command's start-up).
_LAZY = {
    "EnhancedTensorBoardHook": "torch_adapter",
    "TorchLogger": "torch_adapter",
    "TFCallback": "tf_adapter",
    "TFLogger": "tf_adapter",
    "CheckpointManager": "tf_adapter",
    "runs": "unitb.query.tables",  # a row per run below a folder (an Arrow table)
    "scalars": "unitb.query.tables",  # every point of those runs, with epoch and samples
    "resume": "unitb.resume",  # the module itself
    "FolderBusy": "unitb.folder.claim",
    "alert": "unitb.life.alerts",
    "sweep_params": "unitb.life.sweep_trial",
}

__all__ = ["schema", "reader", "UnitbWarning", *_LAZY]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'unitb' has no attribute {name!r}")
    loaded = _import_module(module)
    value = loaded if module == f"unitb.{name}" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(__all__)
