"""Read a run directory back into rows, with tensorboard's own event-file loading.

Records are parsed a block at a time by protobuf's C parser (:mod:`unitb.read.records`; never
TensorFlow, even where it is installed), and ``data_compat`` folds the old ``histo``/``image``
forms that ``torch.utils.tensorboard`` writes into the tensor form that ``tf.summary`` writes,
so rows from both frameworks look the same (plain ``simple_value`` scalars take a short cut).
Everything streams: a run of any size is read in bounded memory. A torn last record (a crash
mid-write) ends that file quietly: everything before it is returned.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple, Union

import numpy as np

from unitb.files.event_files import (EVENT_FILE_MARK, event_files, find_runs, is_event_file,  # noqa: F401
                                     other_event_files)
from unitb.files.png import png_pixels
from unitb.read import columns
from unitb.read.columns import TagTable
from unitb.read.records import event_batches

__all__ = ["Row", "ScalarRows", "EVENT_FILE_MARK", "is_event_file", "event_files", "other_event_files",
           "find_runs", "iter_events", "row_chunks", "iter_rows", "read_run", "tag_summary", "steps_by_tag",
           "decoded_values", "tag_scalars", "scalar_arrays", "scalars", "hparams", "decode_png", "png_pixels",
           "summarize", "session_values"]

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




FILE_RECORDS = 1 << 40  # record numbers of a run: file i's records are numbered from i * FILE_RECORDS


def _run_blocks(run_dir: str, tags: "columns.TagTable") -> Iterator[Tuple[str, "columns.Block"]]:
    """``(file, block)`` for every block of a run's event files, in writing order, with one tag
    table; record numbers order the whole run. The one loop every reader below runs over."""
    for number, path in enumerate(event_files(run_dir)):
        for block in columns.blocks(path, tags, first=number * FILE_RECORDS):
            yield path, block


def _in_order(block: "columns.Block") -> Iterator[Any]:
    """A block in record order: ``(start, stop)`` index ranges of its scalar arrays, and the
    other events (protobuf ``Event`` s) between them."""
    cursor = 0
    for position, event in block.others:
        stop = int(np.searchsorted(block.record, position))
        if stop > cursor:
            yield cursor, stop
        yield event
        cursor = stop
    if cursor < len(block.record):
        yield cursor, len(block.record)


def _by_tag(ids: np.ndarray) -> Iterator[Tuple[int, np.ndarray]]:
    """``(tag id, indices)`` of each tag in ``ids``, indices in their original order."""
    order = np.argsort(ids, kind="stable")
    for chunk in np.split(order, np.flatnonzero(np.diff(ids[order])) + 1):
        if len(chunk):
            yield int(ids[chunk[0]]), chunk


def iter_events(path: str):
    """``Event`` protos of one file, in order (torn tail tolerated)."""
    for batch in event_batches(path):
        yield from batch


class ScalarRows(NamedTuple):
    """A stretch of plain scalar rows of one file, as columns (what most of a run is): the
    rows ``Row(tags[i], steps[i], wall_times[i], "scalar", values[i], file)``."""
    tags: Union[List[str], np.ndarray]  # lists, or numpy arrays from ``row_chunks(arrays=True)``
    steps: Union[List[int], np.ndarray]
    wall_times: Union[List[float], np.ndarray]
    values: Union[List[float], np.ndarray]
    file: str
    tag_ids: Optional[np.ndarray] = None  # with arrays=True: ``tags`` as ids into ``tag_names``
    tag_names: Optional[List[str]] = None  # the run's tags so far (ids index it)


def row_chunks(run_dir: str, arrays: bool = False) -> Iterator[Any]:
    """Every summary row of one run directory, in file then write order, streamed: plain
    scalars come as :class:`ScalarRows` columns, everything else as single :class:`Row` s.
    ``arrays``: the columns as numpy arrays rather than lists (for a columnar writer)."""
    tags = TagTable()
    plugin_of: Dict[str, str] = {}
    for path, block in _run_blocks(run_dir, tags):
        names = np.asarray(tags.names, dtype=object)
        for piece in _in_order(block):
            if isinstance(piece, tuple):
                start, stop = piece
                if arrays:
                    ids = block.tag[start:stop]
                    yield ScalarRows(names[ids], block.step[start:stop], block.wall_time[start:stop],
                                     block.value[start:stop], path, ids, tags.names)
                else:
                    yield ScalarRows(names[block.tag[start:stop]].tolist(), block.step[start:stop].tolist(),
                                     block.wall_time[start:stop].tolist(), block.value[start:stop].tolist(), path)
            else:
                yield from _event_rows(piece, plugin_of, path)


def iter_rows(run_dir: str) -> Iterator[Row]:
    """Every summary row of one run, streamed: one row in memory at a time.

    Args:
        run_dir: The run's folder (one of :func:`find_runs`).

    Returns:
        :class:`Row` s in file, then write order.
    """
    for chunk in row_chunks(run_dir):
        if isinstance(chunk, ScalarRows):
            for tag, step, wall_time, value in zip(chunk.tags, chunk.steps, chunk.wall_times, chunk.values):
                yield Row(tag, step, wall_time, "scalar", value, chunk.file)
        else:
            yield chunk


def hparams(run_dir: str) -> Dict[str, object]:
    """The run's hyperparameters, as its HPARAMS records hold them.

    Args:
        run_dir: The run's folder.

    Returns:
        ``{name: value}``; where records disagree, the later one wins.
    """
    values: Dict[str, object] = {}
    for row in iter_rows(run_dir):
        if row.kind == "hparams":
            values.update(session_values(row.value))
    return values


def read_run(run_dir: str) -> List[Row]:
    """All summary rows of one run.

    Args:
        run_dir: The run's folder.

    Returns:
        :class:`Row` s in file, then write order (:func:`iter_rows` streams them instead).
    """
    return list(iter_rows(run_dir))


def _event_rows(event, plugin_of: Dict[str, str], path: str) -> Iterator[Row]:
    """The rows of one event the array path left to protobuf."""
    step, wall_time = int(event.step), event.wall_time
    for tag, kind, value in _event_values(event, plugin_of):
        yield Row(tag, step, wall_time, kind, value, path)


def tag_summary(run_dir: str) -> List[Dict[str, object]]:
    """What ``unitb tags`` prints, with no value decoded.

    Args:
        run_dir: The run's folder.

    Returns:
        One dict per tag: ``tag``, ``kind`` (that of its first record), ``count``, ``first`` and
        ``last`` step.
    """
    table: Dict[str, List] = {}  # tag: [kind, count, first step, last step, first record]
    tags = TagTable()
    plugin_of: Dict[str, str] = {}
    for _path, block in _run_blocks(run_dir, tags):
        if len(block.tag):
            ids, first, inverse = np.unique(block.tag, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
            low = np.full(len(ids), np.iinfo(np.int64).max)
            high = np.full(len(ids), np.iinfo(np.int64).min)
            np.minimum.at(low, inverse, block.step)
            np.maximum.at(high, inverse, block.step)
            for tag_id, count, lo, hi, record in zip(ids.tolist(), np.bincount(inverse).tolist(), low.tolist(),
                                                    high.tolist(), block.record[first].tolist()):
                _tally(table, tags.names[tag_id], "scalar", count, lo, hi, record)
        for record, event in block.others:
            step = int(event.step)
            if not event.summary.value:
                if event.HasField("graph_def"):
                    _tally(table, "__graph__", "graph", 1, step, step, record)
                continue
            for value in event.summary.value:
                _tally(table, value.tag, _kind_of(value, plugin_of), 1, step, step, record)
    return [{"tag": tag, "kind": kind, "count": count, "first_step": first, "last_step": last}
            for tag, (kind, count, first, last, _record) in sorted(table.items())]


def _tally(table: Dict[str, List], tag: str, kind: str, count: int, low: int, high: int, record: int) -> None:
    entry = table.get(tag)
    if entry is None:
        table[tag] = [kind, count, low, high, record]
        return
    entry[1] += count
    entry[2], entry[3] = min(entry[2], low), max(entry[3], high)
    if record < entry[4]:  # blocks hand their scalars and their other records over separately
        entry[0], entry[4] = kind, record


def _kind_of(value, plugin_of: Dict[str, str]) -> str:
    if value.WhichOneof("value") == "simple_value":
        return "scalar"
    plugin = value.metadata.plugin_data.plugin_name
    if plugin:
        plugin_of[value.tag] = plugin
    else:
        plugin = plugin_of.get(value.tag) or _legacy_kind(value)
    return _PLUGIN_KIND.get(plugin, plugin or "unknown")


def steps_by_tag(run_dir: str, values_of: Tuple[str, ...] = ()
                 ) -> Iterator[Tuple[str, str, List[int], Optional[List[object]]]]:
    """``(tag, kind, steps, values)`` pieces of a run in file order (a tag's pieces in the
    order of its records), decoding only the values of the kinds in ``values_of`` (``values``
    is None for the rest): the layout diff needs tags and steps, plus the custom-scalars
    layout and the hparams, and gets each block's scalars as one piece per tag."""
    tags = TagTable()
    plugin_of: Dict[str, str] = {}
    kinds: Dict[str, str] = {}
    for _path, block in _run_blocks(run_dir, tags):
        for piece in _in_order(block):
            if isinstance(piece, tuple):
                start, stop = piece
                for tag_id, indices in _by_tag(block.tag[start:stop]):
                    yield tags.names[tag_id], "scalar", block.step[start:stop][indices].tolist(), None
                continue
            step = int(piece.step)
            if not piece.summary.value:
                if piece.HasField("graph_def"):
                    yield "__graph__", "graph", [step], None
                continue
            for value in piece.summary.value:
                kind = kinds.get(value.tag)
                if kind is None:
                    kind = kinds[value.tag] = _kind_of(value, plugin_of)
                decoded = [_decode(kind, _migrated(value))] if kind in values_of else None
                yield value.tag, kind, [step], decoded


def decoded_values(events: Iterable[Any], plugin_of: Dict[str, str]) -> Iterator[Tuple[str, int, str, object]]:
    """(tag, step, kind, value) of every summary value of ``events``, decoded as the rows are
    (a graph event is ``("__graph__", step, "graph", None)``). ``plugin_of`` carries what earlier
    events said about each tag: pass the same dict for the events of one run read a piece at a
    time."""
    for event in events:
        step = int(event.step)
        for tag, kind, value in _event_values(event, plugin_of):
            yield tag, step, kind, value


def _event_values(event, plugin_of: Dict[str, str]) -> Iterator[Tuple[str, str, object]]:
    """(tag, kind, decoded value) of one event's summary values; a graph event is
    ``("__graph__", "graph", None)``, another event without values gives nothing."""
    values = event.summary.value
    if not values:
        if event.HasField("graph_def"):
            yield "__graph__", "graph", None
        return
    for value in values:
        kind = _kind_of(value, plugin_of)
        if kind == "scalar" and value.WhichOneof("value") == "simple_value":
            yield value.tag, kind, float(value.simple_value)
        else:
            yield value.tag, kind, _decode(kind, _migrated(value))


def tag_scalars(events: Iterable[Any], tag: str, plugin_of: Dict[str, str],
                seen: Set[str]) -> Iterator[Tuple[int, float]]:
    """``(step, value)`` of the scalar ``tag`` in ``events``, decoding nothing else (following
    one metric of a busy run); every tag met is added to ``seen``."""
    for event in events:
        for value in event.summary.value:
            name = value.tag
            seen.add(name)
            if name == tag and _kind_of(value, plugin_of) == "scalar":
                number = value.simple_value if value.WhichOneof("value") == "simple_value" else \
                    _decode("scalar", _migrated(value))
                if isinstance(number, (int, float)):
                    yield int(event.step), float(number)


def _migrated(value):
    """``value`` in the tensor form ``tf.summary`` writes (tensorboard's ``data_compat`` folds the
    old ``histo``/``image`` forms torch writes into it); imported only when a run needs it."""
    from tensorboard import data_compat

    return data_compat.migrate_value(value)


def _legacy_kind(value) -> str:
    kind = value.WhichOneof("value")
    return {"histo": "histograms", "image": "images", "audio": "audio"}.get(kind or "", "")


def _decode(kind: str, value) -> object:
    from unitb.files.tensor_proto import ndarray_of

    if kind in ("hparams", "custom_scalars"):
        return bytes(value.metadata.plugin_data.content) or value.tensor.SerializeToString()
    if not value.HasField("tensor"):
        return None
    array = ndarray_of(value.tensor)
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


def scalar_arrays(run_dir: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """A run's curves as arrays: the fast way to them.

    Args:
        run_dir: The run's folder.

    Returns:
        ``{tag: (steps, values)}``, int64 and float64 arrays in the order the points were written.
    """
    tags = TagTable()
    pieces: Dict[str, List[Tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}  # tag: [(records, steps, values)]
    plugin_of: Dict[str, str] = {}
    kinds: Dict[str, str] = {}
    for _path, block in _run_blocks(run_dir, tags):
        for tag_id, indices in _by_tag(block.tag):
            pieces.setdefault(tags.names[tag_id], []).append(
                (block.record[indices], block.step[indices], block.value[indices]))
        others: Dict[str, List[Tuple[int, int, Any]]] = {}
        for record, event in block.others:
            for value in event.summary.value:
                tag = value.tag
                kind = kinds.get(tag)
                if kind is None:
                    kind = kinds[tag] = _kind_of(value, plugin_of)
                if kind != "scalar":
                    continue
                number = value.simple_value if value.WhichOneof("value") == "simple_value" else \
                    _decode("scalar", _migrated(value))
                others.setdefault(tag, []).append((record, int(event.step), number))
        for tag, points in others.items():
            point_records, point_steps, numbers = zip(*points)
            pieces.setdefault(tag, []).append((np.asarray(point_records, np.int64), np.asarray(point_steps, np.int64),
                                               np.asarray(numbers, np.float64)))
    out: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    for tag, parts in pieces.items():
        record_numbers, steps, values = (np.concatenate(column) for column in zip(*parts))
        if len(parts) > 1 and np.any(np.diff(record_numbers) < 0):  # a tag some of whose records took the other path
            order = np.argsort(record_numbers, kind="stable")
            steps, values = steps[order], values[order]
        out[tag] = (steps, values)
    return out


def scalars(run_dir: str) -> Dict[str, List[Tuple[int, float]]]:
    """A run's curves as lists (:func:`scalar_arrays` gives the same as arrays).

    Args:
        run_dir: The run's folder.

    Returns:
        ``{tag: [(step, value), ...]}`` in the order the points were written.
    """
    return {tag: list(zip(steps.tolist(), values.tolist())) for tag, (steps, values) in scalar_arrays(run_dir).items()}


def decode_png(image_value: dict, index: int = 0) -> np.ndarray:
    """Decode one image of an image row.

    Args:
        image_value: The ``value`` of a :class:`Row` of kind ``image``.
        index: Which image of the row (a row may hold several).

    Returns:
        An H x W x 3 uint8 array.
    """
    return png_pixels(image_value["png"][index])


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


def session_values(content: object) -> Dict[str, object]:
    """The hparams a run was started with, from the hparams plugin's session-start record
    (``{}`` for the plugin's other records)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    if not isinstance(content, (bytes, bytearray)):
        return {}
    data = plugin_data_pb2.HParamsPluginData()
    try:
        data.ParseFromString(bytes(content))
    except Exception:
        return {}
    if not data.HasField("session_start_info"):
        return {}
    out: Dict[str, object] = {}
    for key, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        if kind is not None:
            item = getattr(value, kind)
            # The plugin keeps every number as a double: a whole number is shown as one (2, not 2.0).
            out[key] = int(item) if isinstance(item, float) and item.is_integer() and abs(item) < 2 ** 53 else item
    return out
