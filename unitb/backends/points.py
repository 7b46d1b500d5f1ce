"""Records read back from an event file, in the forms the backends take."""
from __future__ import annotations

import io
from typing import Dict, Tuple

import numpy as np


def image_of(value: Dict[str, object]):
    """The first picture of an image record as a PIL image."""
    from PIL import Image

    return Image.open(io.BytesIO(value["png"][0])).convert("RGB")  # type: ignore[index]


def histogram_of(buckets: object, max_bins: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` of a histogram record's ``[left, right, count]`` rows, neighbouring
    buckets merged so that there are at most ``max_bins``."""
    rows = np.asarray(buckets, dtype=np.float64).reshape(-1, 3)
    group = -(-len(rows) // max_bins)
    starts = np.arange(0, len(rows), group)
    counts = np.add.reduceat(rows[:, 2], starts)
    edges = np.append(rows[starts, 0], rows[-1, 1])
    return counts, edges
