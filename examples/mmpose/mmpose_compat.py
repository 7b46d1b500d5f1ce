"""Stand-ins that let mmpose 1.3.2 import on a CPU stack without compiled mmcv ops or torchvision.

mmcv-lite (the pure-Python mmcv 2.1.0 wheel) has no ``mmcv.ops``, and PyPI's torchvision does
not import beside torch 2.13.0 CPU. Importing ``mmpose.models`` (under ``default_scope='mmpose'``
the Runner does) pulls in the EDPose / deformable-DETR heads (``from mmcv.ops import ...``) and
``mmpose.visualization.simcc_vis`` (``from torchvision.transforms import ToPILImage``). None of
them is used by top-down heatmap models. This module registers placeholders for exactly those
two imports — and does nothing when the real packages import. Using a placeholder raises a clear
error. It belongs to the examples/tests, never to the unitb library.
"""
from __future__ import annotations

import importlib
import sys
import types


class _Unavailable:
    """A class that fails loudly when used (constructed), not when imported."""

    _what = "this operator"

    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{self._what} needs compiled mmcv ops, which this CPU install does not have; "
                           "install full mmcv to use it")


def _placeholder_module(name: str, doc: str) -> types.ModuleType:
    module = types.ModuleType(name, doc)

    def __getattr__(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return type(attr, (_Unavailable,), {"_what": f"{name}.{attr}"})
    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return module


def install() -> list:
    """Register the stand-ins that are needed; return the names of those installed."""
    installed = []
    try:
        importlib.import_module("mmcv.ops")
    except Exception:
        sys.modules["mmcv.ops"] = _placeholder_module("mmcv.ops", "placeholder: no compiled mmcv ops")
        import mmcv

        mmcv.ops = sys.modules["mmcv.ops"]
        installed.append("mmcv.ops")
    try:
        importlib.import_module("torchvision.transforms")
    except Exception:
        if "mmpose.visualization.simcc_vis" not in sys.modules:
            stub = _placeholder_module("mmpose.visualization.simcc_vis", "placeholder: needs torchvision")
            stub.SimCCVisualizer = type("SimCCVisualizer", (_Unavailable,), {"_what": "SimCCVisualizer"})
            sys.modules["mmpose.visualization.simcc_vis"] = stub
            installed.append("mmpose.visualization.simcc_vis")
    return installed


INSTALLED = install()
