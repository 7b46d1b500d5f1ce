"""The small JSON files a run folder keeps (the backends' state, the step index, a resume's
journal and manifest, the mirror's state): each is written whole under ``<name>.tmp`` and
renamed over the old one, so a reader never sees half a file; one that is missing or unreadable
reads as empty."""
from __future__ import annotations

import json
import os
from typing import Dict


def read_dict(path: str) -> Dict[str, object]:
    """The JSON object in ``path``; ``{}`` when it is missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path: str, data: object, *, durable: bool = False, **dump_options) -> None:
    """Replace ``path`` with ``data`` in one rename. ``durable``: on disk before the rename (a
    journal that must survive a crash); without it, the file may be lost to a crash, and its
    reader then starts from nothing."""
    partial = path + ".tmp"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(data, handle, **dump_options)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(partial, path)
