"""The index of a logdir's runs, kept beside them, so a second question is answered without
reading a single event file again.

``<logdir>/.unitb-index/`` holds, per run, a Parquet file of its points (with epoch and samples,
:mod:`unitb.query.run_facts`) and ``runs.json``: each run's summary and the *signature* it was
read at (the name, size and modification time of each of its event files). A question lists the
runs and their files (``stat`` only), reads again just the runs whose signature changed (a run
that grew, one that was added; a run that is gone leaves the index) on worker processes side by
side (a store's runs fetched ahead into local copies, :mod:`unitb.read.prefetch`), and writes
the new ``runs.json`` in one rename.

Safe while runs write: a run read mid-write is read up to its last whole record and its
signature is the one taken *before* reading, so its growth is read at the next question. Safe
with two builders at once: each points file is written under a fresh name and renamed into
place, ``runs.json`` is replaced whole, so whichever builder renames last leaves an index whose
every entry is whole; a points file no entry names is removed once it is a minute old (never one a
builder beside this one has just written).

Where the logdir cannot be written (a shared read-only folder, a store URL) the index lives in
the user's cache (``$XDG_CACHE_HOME/unitb/index/<hash of the logdir>``).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from unitb.files import json_files, storage
from unitb.files.event_files import is_event_file
from unitb.files.names import ENDED, INDEX_FOLDER
from unitb.query import run_status
from unitb.query.run_facts import read_run_facts
from unitb.read import logdir as logdir_runs

FORMAT = 1  # bumped when what an entry holds changes: older entries are read again
MANIFEST = "runs.json"
ORPHAN_SECONDS = 60.0


class RunEntry:
    """One run as the index holds it: ``summary`` (with ``status`` added when asked) and the
    Parquet file of its points."""

    def __init__(self, name: str, summary: Dict[str, Any], points: str) -> None:
        self.name = name
        self.summary = summary
        self.points = points


def index_folder(root: str) -> str:
    """Where ``root``'s index lives: beside its runs where that can be written, else the cache."""
    if not storage.is_url(root) and os.path.isdir(root):  # never a folder of its own where none was
        beside = os.path.join(root, INDEX_FOLDER)
        try:
            os.makedirs(beside, exist_ok=True)
            if os.access(beside, os.W_OK):
                return beside
        except OSError:
            pass
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha1(os.path.abspath(root).encode() if not storage.is_url(root) else root.encode()).hexdigest()
    folder = os.path.join(cache, "unitb", "index", key[:16])
    os.makedirs(folder, exist_ok=True)
    return folder


def _local_signature(folder: str) -> Tuple[List[List[Any]], float]:
    """``([[file, size, mtime_ns], ...], newest write)`` of a run folder's event files."""
    files: List[List[Any]] = []
    newest = 0.0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file() and is_event_file(entry.name):
            st = entry.stat()
            files.append([entry.name, st.st_size, st.st_mtime_ns])
            newest = max(newest, st.st_mtime)
    return files, newest


def _moment(info: Dict[str, Any]) -> float:
    stamp: Any = info.get("mtime") or info.get("LastModified") or info.get("updated")
    if hasattr(stamp, "timestamp"):  # a datetime (S3's LastModified)
        return float(stamp.timestamp())
    try:
        return float(stamp or 0)
    except (TypeError, ValueError):  # a store's text time: the ETag tells a change instead
        return 0.0


def _store_folders(root: str) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{folder's path in the store: {file name: the store's details}}`` of every object below
    ``root``, from one fresh listing (not one request a run)."""
    fs, base = storage.filesystem(root)
    folders: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for rel, info in storage.objects(fs, base).items():
        parent, _, name = rel.rpartition("/")
        folders.setdefault(f"{base}/{parent}" if parent else base, {})[name] = info
    return folders


def _store_signature(listed: Dict[str, Dict[str, Any]]) -> Tuple[List[List[Any]], float, Optional[float]]:
    """``([[file, size, ETag or time], ...], newest upload, the end mark's upload time or None)``
    of one run folder's objects."""
    files: List[List[Any]] = []
    newest, ended = 0.0, None
    for name, info in sorted(listed.items()):
        if name == ENDED:
            ended = _moment(info)
        elif is_event_file(name):
            files.append([name, int(info.get("size") or 0), str(info.get("ETag") or _moment(info))])
            newest = max(newest, _moment(info))
    return files, newest, ended


def _read(job: Tuple[str, str, str]) -> Tuple[Dict[str, Any], str]:
    """A worker's part: one run read, its points written to a fresh file in the index folder."""
    import pyarrow.parquet as pq

    name, folder, index = job
    facts = read_run_facts(name, folder)
    handle, partial = tempfile.mkstemp(prefix=".points-", suffix=".tmp", dir=index)
    os.close(handle)
    pq.write_table(facts.table, partial, compression="zstd")
    final = os.path.join(index, f"{_key(name)}-{os.path.basename(partial)[len('.points-'):-len('.tmp')]}.parquet")
    os.replace(partial, final)
    return facts.summary, final


def _key(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:16]


def update(root: str, runs: Optional[Sequence[Tuple[str, str]]] = None) -> List[RunEntry]:
    """Every run below ``root`` with its summary (and live ``status``), the index brought up to date.

    Args:
        root: A folder of runs, or a store URL.
        runs: ``(name, folder)`` of the runs (default: every run below ``root``).

    Returns:
        The runs' entries, in the runs' order.
    """
    if not storage.is_url(root):
        root = os.path.abspath(root)  # the index names files by whole paths: any working directory reads it
    runs = list(logdir_runs.runs_below(root) if runs is None else runs)
    index = index_folder(root)
    manifest_path = os.path.join(index, MANIFEST)
    known = json_files.read_dict(manifest_path)
    if known.get("format") != FORMAT:
        known = {}
    held = known.get("runs")
    entries: Dict[str, Any] = dict(held) if isinstance(held, dict) else {}
    listing = _store_folders(root) if storage.is_url(root) else None
    fresh: Dict[str, Any] = {}
    stale: List[Tuple[str, str, str]] = []
    live: Dict[str, Tuple[float, Optional[float]]] = {}  # newest write, the store's end mark
    for name, folder in runs:
        if listing is not None:
            files, newest, ended = _store_signature(listing.get(storage.filesystem(folder)[1], {}))
        else:
            (files, newest), ended = _local_signature(folder), None
        live[name] = (newest, ended)
        old = entries.get(name)
        if old is not None and old.get("signature") == files and old.get("path") == folder \
                and os.path.exists(old.get("points", "")):
            fresh[name] = old
        else:
            fresh[name] = {"signature": files, "path": folder}
            stale.append((name, folder, index))
    if stale:  # read on workers; a store's runs fetched ahead into local copies (unitb.read.prefetch)
        for name, (summary, points) in logdir_runs.over_runs(_read, root, [(n, f) for n, f, _ in stale], (index,)):
            fresh[name].update(summary=dict(summary, path=fresh[name]["path"]), points=points)
    if stale or set(entries) != set(fresh):
        _write_manifest(index, {"format": FORMAT, "root": root, "runs": fresh})
        _remove_orphans(index, {entry["points"] for entry in fresh.values()})
    out = []
    for name, _folder in runs:
        entry = fresh[name]
        summary = dict(entry["summary"])
        newest, ended = live[name]
        summary["status"] = run_status.store_status(ended, newest) if listing is not None \
            else run_status.local_status(entry["path"], newest)
        out.append(RunEntry(name, summary, entry["points"]))
    return out


def _write_manifest(index: str, data: Dict[str, Any]) -> None:
    """``runs.json`` replaced whole, from a file of this builder's own (another may write beside it)."""
    import json

    try:
        handle, partial = tempfile.mkstemp(prefix=".runs-", suffix=".tmp", dir=index)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(partial, os.path.join(index, MANIFEST))
    except OSError:
        pass  # an index that cannot be kept: the next question reads the runs again


def _remove_orphans(index: str, named: set) -> None:
    """Points files no entry names, a minute old (a builder beside this one may be about to name one)."""
    now = time.time()
    for entry in os.scandir(index):
        if entry.name.endswith((".parquet", ".tmp")) and entry.path not in named:
            try:
                if now - entry.stat().st_mtime > ORPHAN_SECONDS:
                    os.remove(entry.path)
            except OSError:
                pass
