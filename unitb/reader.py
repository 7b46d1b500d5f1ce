"""Read a run directory back into rows, with tensorboard's own event-file loading.

Records are parsed a block at a time by protobuf's C parser (:mod:`unitb.records_io`; never
TensorFlow, even where it is installed), and ``data_compat`` folds the old ``histo``/``image``
forms that ``torch.utils.tensorboard`` writes into the tensor form that ``tf.summary`` writes,
so rows from both frameworks look the same (plain ``simple_value`` scalars take a short cut).
Everything streams: a run of any size is read in bounded memory. A torn last record (a crash
mid-write) ends that file quietly: everything before it is returned.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from unitb import storage

EVENT_FILE_MARK = "tfevents"
# The second event file a Keras fit writes for tf.summary calls inside the model
# (tf_adapter.model_summaries); named here so the core (the mirror) can tell it apart.
IN_MODEL_SUFFIX = ".in-model"

_PLUGIN_KIND = {
    "scalars": "scalar",
    "histograms": "histogram",
    "images": "image",
    "text": "text",
    "hparams": "hparams",
    "custom_scalars": "custom_scalars",
    "graph": "graph",
}


class Row(NamedTuple):
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


def event_files(run_dir: str, storage_options: Optional[Dict[str, object]] = None) -> List[str]:
    """Event files directly inside ``run_dir``, in writing order: by the timestamp in the
    name, then by the writer's counter read as a number (plain string order would put a
    process's 10th writer before its 9th when both opened in the same second). ``run_dir``
    may be a URL (``s3://…``, reached with ``storage_options`` or the environment): the files
    come back as URLs."""
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
    """Every directory under ``root`` (itself included) that holds event files."""
    if storage.is_url(root):
        return sorted({f.rsplit("/", 1)[0] for f in storage.walk_files(root) if is_event_file(f)
                       and "/.unitb-removed/" not in f})
    runs = []
    for current, _dirs, files in os.walk(root):
        if any(is_event_file(f) for f in files):
            runs.append(current)
    return sorted(runs)


def _summary_events(paths: Iterable[str]):
    """``(event, its summary values)`` of the events of ``paths`` in order, parsed a block at a
    time; a graph event comes with ``None``, other events without values are skipped. The one
    loop every reader below runs over."""
    from unitb.records_io import event_batches

    for path in paths:
        for batch in event_batches(path):
            for event in batch:
                values = event.summary.value
                if values:
                    yield event, values
                elif event.HasField("graph_def"):
                    yield event, None


def iter_events(path: str):
    """``Event`` protos of one file, in order (torn tail tolerated)."""
    from unitb.records_io import event_batches

    for batch in event_batches(path):
        yield from batch


def iter_rows(run_dir: str) -> Iterator[Row]:
    """Every summary row of one run directory, in file then write order, streamed."""
    plugin_of: Dict[str, str] = {}
    for path in event_files(run_dir):
        yield from _rows_of_file(path, plugin_of)


def read_run(run_dir: str) -> List[Row]:
    """All summary rows of one run directory, in file then write order."""
    return list(iter_rows(run_dir))


def _rows_of_file(path: str, plugin_of: Dict[str, str]) -> Iterator[Row]:
    from tensorboard import data_compat

    simple = set()  # tags written as plain simple_value scalars (torch): no migration, no decoding
    for event, values in _summary_events([path]):
        step, wall_time = event.step, event.wall_time
        if values is None:
            yield Row("__graph__", int(step), wall_time, "graph", None, path)
            continue
        for value in values:
            tag = value.tag
            if tag in simple or (value.WhichOneof("value") == "simple_value" and not simple.add(tag)):
                yield Row(tag, step, wall_time, "scalar", value.simple_value, path)
                continue
            value = data_compat.migrate_value(value)
            if value.metadata.plugin_data.plugin_name:
                plugin_of[tag] = value.metadata.plugin_data.plugin_name
            plugin = plugin_of.get(tag, "")
            kind = _PLUGIN_KIND.get(plugin, plugin or "unknown")
            yield Row(tag, step, wall_time, kind, _decode(kind, value), path)


def tag_summary(run_dir: str) -> List[Dict[str, object]]:
    """What ``unitb tags`` prints — per tag: kind, count, first and last step — read at the
    speed of the parser: no value is decoded, and a tag's kind is settled at its first record."""
    table: Dict[str, List] = {}
    plugin_of: Dict[str, str] = {}
    for event, values in _summary_events(event_files(run_dir)):
        step = event.step
        if values is None:
            _count(table, "__graph__", int(step), "graph")
            continue
        for value in values:
            entry = table.get(value.tag)
            if entry is None:
                table[value.tag] = [_kind_of(value, plugin_of), 1, step, step]
            else:
                entry[1] += 1
                if step < entry[2]:
                    entry[2] = step
                elif step > entry[3]:
                    entry[3] = step
    return [{"tag": tag, "kind": kind, "count": count, "first_step": int(first), "last_step": int(last)}
            for tag, (kind, count, first, last) in sorted(table.items())]


def _count(table: Dict[str, List], tag: str, step: int, kind: str) -> None:
    entry = table.setdefault(tag, [kind, 0, step, step])
    entry[1] += 1
    entry[2], entry[3] = min(entry[2], step), max(entry[3], step)


def _kind_of(value, plugin_of: Dict[str, str]) -> str:
    if value.WhichOneof("value") == "simple_value":
        return "scalar"
    plugin = value.metadata.plugin_data.plugin_name
    if plugin:
        plugin_of[value.tag] = plugin
    else:
        plugin = plugin_of.get(value.tag) or _legacy_kind(value)
    return _PLUGIN_KIND.get(plugin, plugin or "unknown")


def tag_steps(run_dir: str, values_of: Tuple[str, ...] = ()) -> Iterator[Tuple[str, int, str, object]]:
    """(tag, step, kind, value) of every summary value, decoding only the values of the kinds
    in ``values_of`` (None for the rest): the layout diff needs tags and steps, plus the
    custom-scalars layout and the hparams, at the speed of the parser."""
    from tensorboard import data_compat

    plugin_of: Dict[str, str] = {}
    kinds: Dict[str, str] = {}
    for event, values in _summary_events(event_files(run_dir)):
        step = event.step
        if values is None:
            yield "__graph__", step, "graph", None
            continue
        for value in values:
            kind = kinds.get(value.tag)
            if kind is None:
                kind = kinds[value.tag] = _kind_of(value, plugin_of)
            if kind in values_of:
                yield value.tag, step, kind, _decode(kind, data_compat.migrate_value(value))
            else:
                yield value.tag, step, kind, None


def decoded_values(events: Iterable[object], plugin_of: Dict[str, str]) -> Iterator[Tuple[str, int, str, object]]:
    """(tag, step, kind, value) of every summary value of ``events``, each value decoded as
    :func:`tag_steps` decodes it (a graph event is ``("__graph__", step, "graph", None)``).
    ``plugin_of`` carries what earlier events said about each tag: pass the same dict for
    the events of one run read a piece at a time."""
    from tensorboard import data_compat

    for event in events:
        values = event.summary.value
        if not values:
            if event.HasField("graph_def"):
                yield "__graph__", int(event.step), "graph", None
            continue
        for value in values:
            kind = _kind_of(value, plugin_of)
            if kind == "scalar" and value.WhichOneof("value") == "simple_value":
                yield value.tag, int(event.step), kind, float(value.simple_value)
            else:
                yield value.tag, int(event.step), kind, _decode(kind, data_compat.migrate_value(value))


def _legacy_kind(value) -> str:
    kind = value.WhichOneof("value")
    return {"histo": "histograms", "image": "images", "audio": "audio"}.get(kind or "", "")


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
    """``{tag: [(step, value), ...]}`` for the scalar rows of a run (plain ``simple_value``
    scalars are read straight off the parsed events, without building rows)."""
    from tensorboard import data_compat
    from tensorboard.util import tensor_util

    out: Dict[str, List[Tuple[int, float]]] = {}
    simple: Dict[str, List[Tuple[int, float]]] = {}
    plugin_of: Dict[str, str] = {}
    kinds: Dict[str, str] = {}
    for event, values in _summary_events(event_files(run_dir)):
        if values is None:
            continue
        step = event.step
        for value in values:
            tag = value.tag
            points = simple.get(tag)
            if points is not None:  # a tag written as simple_value (torch) stays one
                points.append((step, value.simple_value))
                continue
            kind = kinds.get(tag)
            if kind is None:
                kind = kinds[tag] = _kind_of(value, plugin_of)
            if kind != "scalar":
                continue
            if value.WhichOneof("value") == "simple_value":
                number = value.simple_value
                simple[tag] = out.setdefault(tag, [])
            else:
                tensor = data_compat.migrate_value(value).tensor
                number = float(np.asarray(tensor_util.make_ndarray(tensor)).reshape(-1)[0])
            points = out.get(tag)
            if points is None:
                points = out[tag] = []
            points.append((step, number))
    return out


def decode_png(image_value: dict, index: int = 0) -> np.ndarray:
    """An image row's ``index``-th PNG as an H x W x C uint8 array."""
    import io

    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(image_value["png"][index])).convert("RGB"))


def summarize(rows: Iterable) -> List[Dict[str, object]]:
    """Per-tag summary: kind, count, first/last step (what ``unitb tags`` prints). ``rows``:
    :class:`Row` s or the (tag, step, kind) triples of :func:`tag_steps`."""
    table: Dict[Tuple[str, str], List[int]] = {}
    for row in rows:
        tag, step, kind = (row.tag, row.step, row.kind) if isinstance(row, Row) else row
        entry = table.get((tag, kind))
        if entry is None:
            table[(tag, kind)] = [1, step, step]
        else:
            entry[0] += 1
            if step < entry[1]:
                entry[1] = step
            elif step > entry[2]:
                entry[2] = step
    return [{"tag": tag, "kind": kind, "count": c, "first_step": int(first), "last_step": int(last)}
            for (tag, kind), (c, first, last) in sorted(table.items())]


