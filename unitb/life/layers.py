"""Which layers get per-layer records: chosen once per run, the same way on both sides."""
from __future__ import annotations

from typing import List, Sequence


def select_layers(names: Sequence[str], limit: int) -> List[int]:
    """Indices of at most ``limit`` names, spread evenly from the first to the last.

    The first N parameters of a ResNet are all stem layers; spreading the pick shows the
    stem, the middle and the head, which is what a person debugging gradients looks at.
    """
    count = len(names)
    if limit <= 0 or count == 0:
        return []
    if count <= limit:
        return list(range(count))
    if limit == 1:
        return [0]
    step = (count - 1) / (limit - 1)
    return sorted({int(round(i * step)) for i in range(limit)})


def unique_names(names: Sequence[str]) -> List[str]:
    """Make per-layer names unique after normalisation (two Keras sub-models may both hold
    ``dense/kernel``): later duplicates get ``_2``, ``_3``... so no two layers share a tag."""
    seen: dict = {}
    out = []
    for name in names:
        count = seen.get(name, 0) + 1
        seen[name] = count
        out.append(name if count == 1 else f"{name}_{count}")
    return out
