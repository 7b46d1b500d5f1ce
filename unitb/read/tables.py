"""Runs as Parquet tables, for DuckDB, Polars or Spark: ``unitb export LOGDIR --format parquet``.

One table of scalars for every run below a folder — a sweep's trials, a team's experiments —
with the columns ``run`` (the run's folder relative to the exported one, ``.`` for itself),
``tag``, ``step``, ``wall_time`` and ``value``; and a second one, beside it as
``<name>.hparams.parquet``, with a row per run: ``run`` and one column per hyperparameter
(a value as written; a hyperparameter whose runs disagree on its type is text). Images,
histograms and texts stay in the event files. Runs are read side by side, each worker writing
its run a block at a time into a file of its own, so memory stays bounded by a block a worker
whatever the size of the runs (the disk holds the runs in flight, uncompressed).
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from typing import Any, Dict, Tuple

import numpy as np

from unitb.read import logdir, run_reader
from unitb.read.arrow_arrays import column_of, numbers, strings

HPARAMS_SUFFIX = ".hparams.parquet"


def hparams_path(out: str) -> str:
    """Where the hyperparameters' table of ``out`` goes."""
    base = out[: -len(".parquet")] if out.endswith(".parquet") else out
    return base + HPARAMS_SUFFIX


def _schema():
    import pyarrow as pa

    return pa.schema([("run", pa.dictionary(pa.int32(), pa.string())), ("tag", pa.string()), ("step", pa.int64()),
                      ("wall_time", pa.float64()), ("value", pa.float64())])


def _run_part(job: Tuple[str, str, str]) -> Tuple[str, int, Dict[str, Any]]:
    """A worker's part: one run's scalars as an Arrow stream file of its own, and its
    hyperparameters; returns (file, rows, hyperparameters)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name, folder, spool = job
    schema = _schema()
    names = strings([name])
    handle, path = tempfile.mkstemp(prefix="run-", suffix=".arrow", dir=spool)
    os.close(handle)
    rows = 0
    values: Dict[str, Any] = {}

    def batch(count: int, tags, steps, walls, numbers_) -> Any:
        run = pa.DictionaryArray.from_arrays(numbers(np.zeros(count, np.int32), np.int32), names)
        return pa.RecordBatch.from_arrays([run, tags, numbers(steps, np.int64), numbers(walls, np.float64),
                                           numbers(numbers_, np.float64)], schema=schema)

    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as stream:
        for chunk in run_reader.row_chunks(folder, arrays=True):
            if isinstance(chunk, run_reader.ScalarRows):
                count = len(chunk.tags)
                tags = pc.take(strings(list(chunk.tag_names or [])), numbers(chunk.tag_ids, np.int64))
                stream.write_batch(batch(count, tags, chunk.steps, chunk.wall_times, chunk.values))
                rows += count
            elif chunk.kind == "scalar":  # a scalar protobuf read whole (a description, a rare form)
                stream.write_batch(batch(1, strings([chunk.tag]), [chunk.step], [chunk.wall_time], [chunk.value]))
                rows += 1
            elif chunk.kind == "hparams":
                values.update(run_reader.session_values(chunk.value))
    return path, rows, values


def write_parquet(root: str, out: str) -> Tuple[int, int]:
    """Write the scalars of every run below ``root`` to ``out`` and their hyperparameters beside
    it; returns (runs, scalar rows). Runs are read by workers side by side, each into an Arrow
    file of its own, and copied into the Parquet file in the runs' order."""
    runs = logdir.runs_below(root)
    spool = tempfile.mkdtemp(prefix="unitb-export-", dir=os.path.dirname(os.path.abspath(out)))
    rows = 0
    hparams: Dict[str, Dict[str, Any]] = {}
    try:
        parts = logdir.over_runs(_run_part, root, runs, (spool,))
        first = next(parts, None)  # the workers start (and the first run is read) before Arrow's threads
        import pyarrow as pa
        import pyarrow.parquet as pq

        with pq.ParquetWriter(out, _schema(), compression="zstd") as writer:
            for name, (path, count, values) in itertools.chain([first] if first is not None else [], parts):
                with pa.memory_map(path) as source:
                    for recorded in pa.ipc.open_stream(source):
                        writer.write_batch(recorded)
                os.unlink(path)
                rows += count
                hparams[name] = values
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    pq.write_table(_hparams_table(hparams), hparams_path(out), compression="zstd")
    return len(runs), rows


def _hparams_table(per_run: Dict[str, Dict[str, Any]]):
    import pyarrow as pa

    names = sorted({name for values in per_run.values() for name in values})
    columns: Dict[str, Any] = {"run": strings(list(per_run))}
    for name in names:
        columns[name] = column_of([values.get(name) for values in per_run.values()])
    return pa.table(columns)
