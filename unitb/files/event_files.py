"""Which files of a folder are TensorBoard event files, in the order they were written, and which
folders hold runs: what every room that touches a run folder needs before reading a record."""
from __future__ import annotations

import os
import re
from typing import Any, Iterable, List, Mapping, Optional, Tuple

from unitb.files import storage
from unitb.files.names import EXPERIMENT_SUFFIX, REMOVED

EVENT_FILE_MARK = "tfevents"


def event_file_name(stamp: float, suffix: str) -> str:
    """An event file's name as TensorBoard's writers make it: the seconds of ``stamp`` (which
    order the files of a run), then ``suffix`` (what wrote it: unitb's own files say so)."""
    return f"events.out.{EVENT_FILE_MARK}.{max(0, int(stamp)):010d}{suffix}"


def is_event_file(name: str) -> bool:
    base = os.path.basename(name)
    return EVENT_FILE_MARK in base and not base.endswith(EXPERIMENT_SUFFIX)


def _natural_key(name: str) -> Tuple[Tuple[int, object], ...]:
    """Numbers compare as numbers: writer ``...pid.10`` comes after ``...pid.9``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


def event_files(run_dir: str, storage_options: Optional[Mapping[str, Any]] = None) -> List[str]:
    """The event files directly inside a run's folder, in writing order.

    The order is by the timestamp in the name, then by the writer's counter read as a number
    (plain string order would put a process's 10th writer before its 9th when both opened in
    the same second).

    Args:
        run_dir: A folder, or a URL (``s3://…``) reached with ``storage_options`` or the environment.
        storage_options: fsspec options for a URL.

    Returns:
        Their paths (URLs for a URL).
    """
    if storage.is_url(run_dir):
        files = [name for name, kind in storage.listdir(run_dir, storage_options)
                 if kind == "file" and is_event_file(name)]
        return [storage.join(run_dir, n) for n in sorted(files, key=_natural_key)]
    try:
        names = sorted(os.listdir(run_dir), key=_natural_key)
    except FileNotFoundError:
        return []
    return [os.path.join(run_dir, n) for n in names
            if is_event_file(n) and os.path.isfile(os.path.join(run_dir, n))]



def other_event_files(run_dir: str, own: Iterable[str] = ()) -> List[str]:
    """Event files in ``run_dir`` other than ``own`` (those a live writer of this run opened):
    the files of another run."""
    mine = {os.path.abspath(p) for p in own}
    return [p for p in event_files(run_dir) if os.path.abspath(p) not in mine]

def find_runs(root: str) -> List[str]:
    """The runs below a folder: every directory that holds event files.

    Args:
        root: A folder or a URL; it counts itself. What resumes set aside (``.unitb-removed/``)
            is no run.

    Returns:
        The runs' folders, sorted.
    """
    if storage.is_url(root):
        return sorted({f.rsplit("/", 1)[0] for f in storage.walk_files(root) if is_event_file(f)
                       and f"/{REMOVED}/" not in f})
    runs = []
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != REMOVED]
        if any(is_event_file(f) for f in files):
            runs.append(current)
    return sorted(runs)
