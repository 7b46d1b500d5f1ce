"""Runs as Parquet tables, for DuckDB, Polars or Spark: ``unitb export LOGDIR --format parquet``.

One table of scalars for every run below a folder — a sweep's trials, a team's experiments —
with the columns ``run`` (the run's folder relative to the exported one, ``.`` for itself),
``tag``, ``step``, ``wall_time`` and ``value``; and a second one, beside it as
``<name>.hparams.parquet``, with a row per run: ``run`` and one column per hyperparameter
(a value as written; a hyperparameter whose runs disagree on its type is text). Images,
histograms and texts stay in the event files. The scalars are written a block at a time as
they are read, so memory stays bounded by one block whatever the size of the runs.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Tuple

from unitb.files import storage
from unitb.files.names import EXPERIMENT_SUFFIX
from unitb.read import reader

HPARAMS_SUFFIX = ".hparams.parquet"


def hparams_path(out: str) -> str:
    """Where the hyperparameters' table of ``out`` goes."""
    base = out[: -len(".parquet")] if out.endswith(".parquet") else out
    return base + HPARAMS_SUFFIX


def runs_below(root: str) -> List[Tuple[str, str]]:
    """``(name, folder)`` of every run below ``root`` (itself included); what resumes set aside
    and a log root's experiment summary (``unitb hparams``) are no runs."""
    found = [run for run in reader.find_runs(root)
             if not all(path.endswith(EXPERIMENT_SUFFIX) for path in reader.event_files(run))]
    if storage.is_url(root):
        base = root.rstrip("/")
        return [(run[len(base):].strip("/") or ".", run) for run in found]
    return [(os.path.relpath(run, root), run) for run in found]


def write_parquet(root: str, out: str) -> Tuple[int, int]:
    """Write the scalars of every run below ``root`` to ``out`` and their hyperparameters beside
    it; returns (runs, scalar rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("run", pa.dictionary(pa.int32(), pa.string())), ("tag", pa.string()), ("step", pa.int64()),
                        ("wall_time", pa.float64()), ("value", pa.float64())])
    runs = runs_below(root)
    rows = 0
    hparams: Dict[str, Dict[str, Any]] = {}
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for name, folder in runs:
            values: Dict[str, Any] = {}
            for chunk in reader.row_chunks(folder, arrays=True):
                if isinstance(chunk, reader.ScalarRows):
                    count = len(chunk.tags)
                    writer.write_table(pa.table({"run": pa.DictionaryArray.from_arrays(
                                                     pa.array(np.zeros(count, np.int32)), pa.array([name])),
                                                 "tag": pa.array(chunk.tags, pa.string()),
                                                 "step": pa.array(chunk.steps, pa.int64()),
                                                 "wall_time": pa.array(chunk.wall_times, pa.float64()),
                                                 "value": pa.array(chunk.values, pa.float64())}, schema=schema))
                    rows += count
                elif chunk.kind == "scalar":  # a scalar protobuf read whole (a description, a rare form)
                    writer.write_table(pa.table({"run": pa.array([name]).dictionary_encode(), "tag": [chunk.tag],
                                                 "step": [int(chunk.step)],
                                                 "wall_time": [float(chunk.wall_time)],
                                                 "value": [float(chunk.value)]}, schema=schema))
                    rows += 1
                elif chunk.kind == "hparams":
                    values.update(reader.session_values(chunk.value))
            hparams[name] = values
    pq.write_table(_hparams_table(hparams), hparams_path(out), compression="zstd")
    return len(runs), rows


def _hparams_table(per_run: Dict[str, Dict[str, Any]]):
    import pyarrow as pa

    names = sorted({name for values in per_run.values() for name in values})
    columns: Dict[str, Any] = {"run": pa.array(list(per_run), pa.string())}
    for name in names:
        cells = [values.get(name) for values in per_run.values()]
        kinds = {type(cell) for cell in cells if cell is not None}
        if kinds <= {int, float} and kinds != {int, float}:
            columns[name] = pa.array(cells)
        elif kinds == {int, float}:
            columns[name] = pa.array([None if cell is None else float(cell) for cell in cells], pa.float64())
        elif kinds == {bool}:
            columns[name] = pa.array(cells, pa.bool_())
        else:
            columns[name] = pa.array([None if cell is None else str(cell) for cell in cells], pa.string())
    return pa.table(columns)
