"""Plain records that adapters produce and sinks write.

They hold host-side Python/numpy values only: an adapter converts its tensors (in one
transfer) before building a record, so the core and the sinks never touch a framework.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple, Union

import numpy as np


@dataclass(frozen=True)
class Scalar:
    tag: str
    value: float
    step: int


@dataclass(frozen=True)
class Histogram:
    tag: str
    values: np.ndarray
    step: int


@dataclass(frozen=True)
class Image:
    """One rendered image, HWC uint8 with 3 channels."""

    tag: str
    image: np.ndarray
    step: int


@dataclass(frozen=True)
class Text:
    tag: str
    text: str
    step: int = 0


@dataclass(frozen=True)
class HParams:
    """Hyper-parameters of the run, written once through the hparams plugin."""

    hparams: Mapping[str, Union[bool, int, float, str]]
    metrics: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """The custom-scalars layout (category -> charts), written once at step 0."""

    layout: Dict[str, List[Dict[str, object]]] = field(default_factory=dict)


Record = Union[Scalar, Histogram, Image, Text, HParams, Layout]
