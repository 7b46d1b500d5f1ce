"""The highest step in each event file, kept as the run is written, so a resume with nothing to
set aside does not read the whole run (``<run>/.unitb-steps.json``).

An entry says: the first ``offset`` bytes of the file (its inode ``ino``, whose first bytes have the
checksum ``head`` — an inode number can be reused by a new file) hold no record after step ``max``.
Event files only grow, so those bytes never change; whatever was appended since (at most
one flush interval's worth after a crash) is read at resume. A file that was replaced (another
inode, or shorter than the offset), or has no entry (an older run, another tool's file), is read
whole by the resume as before: the index can only make a resume skip reading, never skip a record.
"""
from __future__ import annotations

import os
import zlib
from typing import Dict, Optional, Tuple

from unitb.files import json_files
from unitb.files.names import STEP_INDEX
from unitb.read import columns
from unitb.files.event_files import event_files
from unitb.read import records

INDEX = STEP_INDEX


def _load(folder: str) -> Dict[str, Dict[str, int]]:
    data = json_files.read_dict(os.path.join(folder, INDEX))
    return {name: entry for name, entry in data.items() if isinstance(entry, dict)
            and all(isinstance(entry.get(k), int) for k in ("ino", "offset", "max", "head", "head_len"))}


HEAD = 4096  # the first bytes, the file-version record with its creation time among them


def _head(path: str, length: int) -> int:
    with open(path, "rb") as handle:
        return zlib.crc32(handle.read(length))


def _same_file(path: str, stat: os.stat_result, entry: Dict[str, int]) -> bool:
    return (entry["ino"] == stat.st_ino and stat.st_size >= entry["offset"] and stat.st_size >= entry["head_len"]
            and _head(path, entry["head_len"]) == entry["head"])


def _scan(path: str, offset: int, highest: int) -> Tuple[int, int]:
    """(new offset, highest step) after reading the whole records from ``offset`` on, a block
    at a time (bounded memory, however much was written since); steps come off the record
    bytes with numpy (:func:`unitb.read.columns.record_steps`), not one parsed event at a time."""
    for data, starts, lengths, base in records.record_spans(path, offset):
        steps = columns.record_steps(data, starts, lengths)
        highest = max(highest, int(steps.max()))
        offset = base + int(starts[-1] + lengths[-1]) + 4
    return offset, highest


def update(folder: str) -> None:
    """Read what each event file of ``folder`` gained since the last update (the run's writer
    thread calls this at each flush) and save the index."""
    index = _load(folder)
    fresh: Dict[str, Dict[str, int]] = {}
    for path in event_files(folder):
        name = os.path.basename(path)
        try:
            stat = os.stat(path)
        except OSError:
            continue
        entry = index.get(name)
        if entry is None or not _same_file(path, stat, entry):
            head_len = min(stat.st_size, HEAD)
            entry = {"ino": stat.st_ino, "offset": 0, "max": -1, "head_len": head_len, "head": _head(path, head_len)}
        if stat.st_size > entry["offset"]:
            entry["offset"], entry["max"] = _scan(path, entry["offset"], entry["max"])
        fresh[name] = entry
    json_files.write(os.path.join(folder, INDEX), fresh)  # rebuilt from the files if a crash loses it


def highest_step(path: str) -> Optional[int]:
    """The highest step in the event file ``path`` from its index entry and the bytes after it;
    None when the index cannot vouch for the file (then read it whole)."""
    entry = _load(os.path.dirname(path)).get(os.path.basename(path))
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if entry is None or not _same_file(path, stat, entry):
        return None
    _end, highest = _scan(path, entry["offset"], entry["max"])
    return highest


def last_step(path: str) -> int:
    """The highest step in the event file ``path`` (-1 for none): from the index where it can
    vouch for the file, else read off the whole file's record bytes."""
    highest = highest_step(path)
    return highest if highest is not None else _scan(path, 0, -1)[1]
