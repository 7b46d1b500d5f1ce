"""Read a run directory back into rows, with tensorboard's own event-file loading.

Uses tensorboard's pure-Python record reader (never TensorFlow, even where it is installed)
and ``data_compat`` to fold the old ``simple_value``/``histo``/``image`` forms that
``torch.utils.tensorboard`` writes into the tensor form that ``tf.summary`` writes, so rows
from both frameworks look the same. A torn last record (a crash mid-write) ends that file
quietly: everything before it is returned.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

EVENT_FILE_MARK = "tfevents"

_PLUGIN_KIND = {
    "scalars": "scalar",
    "histograms": "histogram",
    "images": "image",
    "text": "text",
    "hparams": "hparams",
    "custom_scalars": "custom_scalars",
    "graph": "graph",
}


@dataclass(frozen=True)
class Row:
    """One summary value read back. ``value`` is a float (scalar), an N x 3 array of
    (left, right, count) buckets (histogram), a dict with width/height/png (image),
    a str (text), or the raw plugin content bytes (hparams, custom_scalars)."""

    tag: str
    step: int
    wall_time: float
    kind: str
    value: object
    file: str = ""


def is_event_file(name: str) -> bool:
    return EVENT_FILE_MARK in os.path.basename(name)


def _natural_key(name: str) -> Tuple[Tuple[int, object], ...]:
    """Numbers compare as numbers: writer ``...pid.10`` comes after ``...pid.9``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


def event_files(run_dir: str) -> List[str]:
    """Event files directly inside ``run_dir``, in writing order: by the timestamp in the
    name, then by the writer's counter read as a number (plain string order would put a
    process's 10th writer before its 9th when both opened in the same second)."""
    try:
        names = sorted(os.listdir(run_dir), key=_natural_key)
    except FileNotFoundError:
        return []
    return [os.path.join(run_dir, n) for n in names
            if is_event_file(n) and os.path.isfile(os.path.join(run_dir, n))]


def find_runs(root: str) -> List[str]:
    """Every directory under ``root`` (itself included) that holds event files."""
    runs = []
    for current, _dirs, files in os.walk(root):
        if any(is_event_file(f) for f in files):
            runs.append(current)
    return sorted(runs)


def iter_records(path: str) -> Iterator[bytes]:
    """Serialized records of one event file; stops quietly at a torn tail."""
    from tensorboard.compat.tensorflow_stub import errors
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

    reader = PyRecordReader_New(path.encode())
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return
        except errors.DataLossError:
            return  # torn last record: a crash mid-write; keep what came before
        yield reader.record()


def iter_events(path: str):
    """``Event`` protos of one event file (torn tail tolerated)."""
    from tensorboard.compat.proto import event_pb2

    for record in iter_records(path):
        event = event_pb2.Event()
        try:
            event.ParseFromString(record)
        except Exception:  # a record with a valid CRC but garbage inside: skip it
            continue
        yield event


def read_run(run_dir: str) -> List[Row]:
    """All summary rows of one run directory, in file then write order."""
    rows: List[Row] = []
    plugin_of: Dict[str, str] = {}
    for path in event_files(run_dir):
        rows.extend(_rows_of_file(path, plugin_of))
    return rows


def _rows_of_file(path: str, plugin_of: Dict[str, str]) -> Iterator[Row]:
    from tensorboard import data_compat

    for event in iter_events(path):
        if event.HasField("graph_def"):
            yield Row("__graph__", int(event.step), event.wall_time, "graph", None, path)
            continue
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            value = data_compat.migrate_value(value)
            if value.metadata.plugin_data.plugin_name:
                plugin_of[value.tag] = value.metadata.plugin_data.plugin_name
            plugin = plugin_of.get(value.tag, "")
            kind = _PLUGIN_KIND.get(plugin, plugin or "unknown")
            yield Row(value.tag, int(event.step), event.wall_time, kind,
                      _decode(kind, value), path)


def _decode(kind: str, value) -> object:
    from tensorboard.util import tensor_util

    if kind in ("hparams", "custom_scalars"):
        return bytes(value.metadata.plugin_data.content) or value.tensor.SerializeToString()
    if not value.HasField("tensor"):
        return None
    array = tensor_util.make_ndarray(value.tensor)
    if kind == "scalar":
        return float(np.asarray(array).reshape(-1)[0])
    if kind == "histogram":
        return np.asarray(array, dtype=np.float64).reshape(-1, 3)
    if kind == "image":
        flat = np.asarray(array).reshape(-1)
        return {"width": int(flat[0]), "height": int(flat[1]), "png": [bytes(b) for b in flat[2:]]}
    if kind == "text":
        flat = np.asarray(array).reshape(-1)
        item = flat[0] if flat.size else b""
        return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
    return array


def scalars(run_dir: str) -> Dict[str, List[Tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` for the scalar rows of a run."""
    out: Dict[str, List[Tuple[int, float]]] = {}
    for row in read_run(run_dir):
        if row.kind == "scalar":
            out.setdefault(row.tag, []).append((row.step, float(row.value)))
    return out


def decode_png(image_value: dict, index: int = 0) -> np.ndarray:
    """An image row's ``index``-th PNG as an H x W x C uint8 array."""
    import io

    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(image_value["png"][index])).convert("RGB"))


def summarize(rows: List[Row]) -> List[Dict[str, object]]:
    """Per-tag summary: kind, count, first/last step (what ``unitb tags`` prints)."""
    table: Dict[Tuple[str, str], Dict[str, object]] = {}
    for row in rows:
        entry = table.setdefault((row.tag, row.kind), {
            "tag": row.tag, "kind": row.kind, "count": 0, "first_step": row.step, "last_step": row.step})
        entry["count"] = int(entry["count"]) + 1
        entry["first_step"] = min(int(entry["first_step"]), row.step)
        entry["last_step"] = max(int(entry["last_step"]), row.step)
    return sorted(table.values(), key=lambda e: (str(e["tag"]), str(e["kind"])))


def steps_by_tag(rows: List[Row], kind: Optional[str] = None) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = {}
    for row in rows:
        if kind is None or row.kind == kind:
            out.setdefault(row.tag, []).append(row.step)
    return out
