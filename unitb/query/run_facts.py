"""One run read once into what the tables need: its points with their epoch and samples seen,
and a summary (times, steps, hyperparameters, each metric's last and best value).

**Axes.** A point's ``epoch`` is the run's ``train/epoch`` at that step (the latest one written
at or before it), and its ``samples`` is the step times the run's ``batch_size`` hyperparameter:
the axes on which a Keras run with batch 32 and an mmpose run with batch 8 compare. Either is
empty where the run does not say.

**Best.** A metric whose name says it is an error (loss, error, time, memory, NME, …) is best
at its lowest; anything else (AP, accuracy, PCK, throughput) at its highest
(:func:`lower_is_better`). Non-finite points (written by other tools: unitb leaves them out)
count for no best.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np

from unitb import schema
from unitb.read import run_reader
from unitb.read.arrow_arrays import numbers, strings

LOWER_IS_BETTER = re.compile(r"loss|error|time|_mb|memory|nme|epe|mae|mse|rmse|wer|cer|perplexity|latency",
                             re.IGNORECASE)

# What each entry point writes as its run's ``framework`` hyperparameter (unitb.life.lifecycle):
# the framework, and the entry point by the name a user gives it.
ENTRY_POINTS = {
    "pytorch-mmengine": ("pytorch", "EnhancedTensorBoardHook"),
    "pytorch": ("pytorch", "TorchLogger"),
    "tensorflow-keras": ("tensorflow", "TFCallback"),
    "tensorflow-loop": ("tensorflow", "TFLogger"),
}


def lower_is_better(tag: str) -> bool:
    """Whether ``tag``'s best value is its lowest: its name below the family names an error or
    a cost (``val/loss``, ``train/loss/coord``, ``train/time/step``, ``val/NME``)."""
    return bool(LOWER_IS_BETTER.search(tag.split("/", 1)[-1]))


def scalars_schema():
    import pyarrow as pa

    return pa.schema([("run", pa.string()), ("tag", pa.string()), ("step", pa.int64()),
                      ("epoch", pa.float64()), ("samples", pa.float64()), ("wall_time", pa.float64()),
                      ("value", pa.float64())])


class RunFacts(NamedTuple):
    summary: Dict[str, Any]  # JSON-ready: see :func:`read_run_facts`
    table: Any  # pyarrow.Table in :func:`scalars_schema`


def read_run_facts(name: str, folder: str) -> RunFacts:
    """Read the run in ``folder`` (named ``name`` in the tables) once.

    The summary holds ``start_time``/``end_time`` (its first and last point's wall time),
    ``steps`` (its highest step), ``hparams``, ``framework``/``entry_point`` and ``metrics``:
    ``{tag: [last, best, best_step]}``."""
    ids: List[np.ndarray] = []
    steps: List[np.ndarray] = []
    walls: List[np.ndarray] = []
    values: List[np.ndarray] = []
    index: Dict[str, int] = {}  # tag -> its id here (the reader's ids, and tags read whole)
    lookup = np.zeros(0, np.int64)  # the reader's tag ids -> ours
    hparams: Dict[str, object] = {}
    for chunk in run_reader.row_chunks(folder, arrays=True):
        if isinstance(chunk, run_reader.ScalarRows):
            reader_names = chunk.tag_names or []
            if len(reader_names) > len(lookup):
                lookup = np.array([index.setdefault(t, len(index)) for t in reader_names], np.int64)
            ids.append(lookup[np.asarray(chunk.tag_ids, np.int64)])
            steps.append(np.asarray(chunk.steps, np.int64))
            walls.append(np.asarray(chunk.wall_times, np.float64))
            values.append(np.asarray(chunk.values, np.float64))
        elif chunk.kind == "scalar":  # a scalar protobuf read whole (a rare form)
            index.setdefault(chunk.tag, len(index))
            ids.append(np.array([index[chunk.tag]], np.int64))
            steps.append(np.array([chunk.step], np.int64))
            walls.append(np.array([chunk.wall_time], np.float64))
            values.append(np.array([chunk.value], np.float64))
        elif chunk.kind == "hparams":
            hparams.update(run_reader.session_values(chunk.value))
    tag_names = list(index)
    tag = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    step = np.concatenate(steps) if steps else np.zeros(0, np.int64)
    wall = np.concatenate(walls) if walls else np.zeros(0, np.float64)
    value = np.concatenate(values) if values else np.zeros(0, np.float64)
    epoch = _epochs(tag, step, value, tag_names)
    samples = _samples(step, hparams.get("batch_size"))
    framework, entry_point = ENTRY_POINTS.get(str(hparams.get("framework", "")), (None, None))
    summary: Dict[str, Any] = {
        "run": name, "path": folder, "framework": framework, "entry_point": entry_point,
        "start_time": float(wall.min()) if len(wall) else None,
        "end_time": float(wall.max()) if len(wall) else None,
        "steps": int(step.max()) if len(step) else None,
        "hparams": {k: v for k, v in hparams.items() if isinstance(v, (bool, int, float, str))},
        "metrics": _metrics(tag, step, value, tag_names),
    }
    return RunFacts(summary, _table(name, tag_names, tag, step, epoch, samples, wall, value))


def _epochs(tag: np.ndarray, step: np.ndarray, value: np.ndarray, names: List[str]) -> Optional[np.ndarray]:
    """Each point's epoch: the latest ``train/epoch`` at or before its step; NaN before the first."""
    if schema.TRAIN_EPOCH not in names:
        return None
    mine = tag == names.index(schema.TRAIN_EPOCH)
    order = np.argsort(step[mine], kind="stable")
    at, epochs = step[mine][order], value[mine][order]
    where = np.searchsorted(at, step, side="right") - 1
    out = np.where(where >= 0, epochs[np.clip(where, 0, None)], np.nan)
    return out


def _samples(step: np.ndarray, batch_size: object) -> Optional[np.ndarray]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, float)) or batch_size <= 0:
        return None
    return step.astype(np.float64) * float(batch_size)


def _metrics(tag: np.ndarray, step: np.ndarray, value: np.ndarray, names: List[str]) -> Dict[str, list]:
    """``{tag: [last, best, best_step]}``: last at the highest step (the last written among
    equals), best by :func:`lower_is_better` over the finite points (None where there are none)."""
    out: Dict[str, list] = {}
    if not len(tag):
        return out
    order = np.lexsort((np.arange(len(tag)), step, tag))  # by tag, then step, then writing order
    sorted_tags = tag[order]
    bounds = np.flatnonzero(np.diff(sorted_tags)) + 1
    for piece in np.split(order, bounds):
        name = names[int(tag[piece[0]])]
        points, at = value[piece], step[piece]
        last = float(points[-1])
        finite = np.isfinite(points)
        if not finite.any():
            out[name] = [_plain(last), None, None]
            continue
        candidates = np.where(finite, points, np.inf if lower_is_better(name) else -np.inf)
        best = int(np.argmin(candidates) if lower_is_better(name) else np.argmax(candidates))
        out[name] = [_plain(last), float(points[best]), int(at[best])]
    return out


def _plain(number: float) -> Optional[float]:
    return number if np.isfinite(number) else None


def _table(name: str, tag_names: List[str], tag, step, epoch, samples, wall, value):
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(tag)
    empty = np.full(count, np.nan)
    run = pa.DictionaryArray.from_arrays(numbers(np.zeros(count, np.int32), np.int32), strings([name]))
    columns = [run.cast(pa.string()),  # one name for every row, without a Python string each
               pc.take(strings(tag_names), numbers(tag, np.int64)) if count else strings([]),
               numbers(step, np.int64), _maybe_null(epoch if epoch is not None else empty),
               _maybe_null(samples if samples is not None else empty), numbers(wall, np.float64),
               numbers(value, np.float64)]
    return pa.Table.from_arrays(columns, schema=scalars_schema())


def _maybe_null(array: np.ndarray):
    """A float column with NaN as null (an axis the run does not have at that point)."""
    import pyarrow as pa

    array = np.ascontiguousarray(array, np.float64)
    validity = np.packbits(~np.isnan(array), bitorder="little")
    return pa.Array.from_buffers(pa.float64(), len(array), [pa.py_buffer(validity), pa.py_buffer(array)])
