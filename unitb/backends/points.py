"""Records read back from an event file, in the forms the backends take."""
from __future__ import annotations

import contextlib
import io
from typing import Callable, Dict, Iterator, Set, Tuple

import numpy as np


class PointErrors:
    """One record a backend cannot take is skipped with one warning per tag kind; the run
    goes on sending the rest (a backend that cannot be reached at all is the forwarder's
    concern: it stops sending to it)."""

    name = "backend"

    def __init__(self, warn: Callable[[str], None]):
        self._warn = warn
        self._said: Set[str] = set()

    @contextlib.contextmanager
    def _skipped_on_error(self, tag: str, kind: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if kind not in self._said:
                self._said.add(kind)
                self._warn(f"unitb: {self.name} did not take the {kind} {tag!r} ({type(exc).__name__}: {exc}); "
                           f"such records are skipped there, the rest is sent")


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
