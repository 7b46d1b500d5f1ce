"""The two tables a team asks questions of: a row per run, and every point of every run.

Both are Arrow tables (``.to_pandas()``, ``polars.from_arrow(...)``; neither library is imported
unless asked), built from the index (:mod:`unitb.query.index`), so only runs that changed since
the last question are read.
"""
from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

from unitb.query import index as run_index
from unitb.read.arrow_arrays import column_of, nullable, strings

if TYPE_CHECKING:
    import pyarrow

# The columns every runs table starts with; a hyperparameter of the same name is ``hparam.<name>``.
FIXED_COLUMNS = ("run", "path", "framework", "entry_point", "status", "start_time", "end_time", "duration_s", "steps")
METRIC_FIELDS = ("last", "best", "best_step")
LEFT_OUT_HPARAMS = ("framework",)  # told by the framework and entry_point columns


def hparam_column(name: str) -> str:
    """The runs table's column of hyperparameter ``name`` (``hparam.<name>`` where a fixed column has the name)."""
    return f"hparam.{name}" if name in FIXED_COLUMNS else name


def wanted(tag: str, patterns: Optional[Sequence[str]]) -> bool:
    """Whether ``tag`` is one of ``patterns`` (names or globs; None: every tag)."""
    return patterns is None or any(fnmatch.fnmatchcase(tag, pattern) for pattern in patterns)


def _patterns(tags: Optional[Iterable[str]]) -> Optional[List[str]]:
    if tags is None:
        return None
    if isinstance(tags, str):
        return [tags]
    return list(tags)


def runs(logdir: str, tags: Optional[Iterable[str]] = None) -> "pyarrow.Table":
    """One row per run below ``logdir``, PyTorch and TensorFlow alike.

    Columns: ``run`` (its folder below ``logdir``), ``path``, ``framework`` (pytorch or
    tensorflow), ``entry_point``, ``status`` (running, finished, crashed, unknown), ``start_time``
    and ``end_time`` (UTC), ``duration_s``, ``steps`` (its highest step); then every
    hyperparameter (``hparam.<name>`` where the name is one of these); then for each scalar tag
    ``<tag>.last``, ``<tag>.best`` and ``<tag>.best_step`` (best: lowest for losses, errors and
    times, highest otherwise).

    Args:
        logdir: A folder of runs (or one run), or a store URL.
        tags: Only these tags' columns: names or glob patterns (``"val/*"``); default all.

    Returns:
        A ``pyarrow.Table``.
    """
    return runs_of(run_index.update(logdir), tags)


def runs_of(entries: Sequence[run_index.RunEntry], tags: Optional[Iterable[str]] = None) -> "pyarrow.Table":
    """:func:`runs` of entries already brought up to date."""
    import pyarrow as pa

    patterns = _patterns(tags)
    summaries = [entry.summary for entry in entries]
    def text(key: str) -> Any:
        return nullable([s.get(key) for s in summaries], "string")

    def moment(key: str) -> Any:
        return nullable([_micros(s.get(key)) for s in summaries], "int64").cast(pa.timestamp("us", tz="UTC"))

    columns: Dict[str, Any] = {
        "run": text("run"), "path": text("path"), "framework": text("framework"),
        "entry_point": text("entry_point"), "status": text("status"),
        "start_time": moment("start_time"), "end_time": moment("end_time"),
        "duration_s": nullable([_duration(s) for s in summaries], "float64"),
        "steps": nullable([s.get("steps") for s in summaries], "int64"),
    }
    names = sorted({name for s in summaries for name in s.get("hparams", {})} - set(LEFT_OUT_HPARAMS))
    for name in names:
        columns[hparam_column(name)] = column_of([s.get("hparams", {}).get(name) for s in summaries])
    tags_seen = sorted({tag for s in summaries for tag in s.get("metrics", {}) if wanted(tag, patterns)})
    for tag in tags_seen:
        cells = [s.get("metrics", {}).get(tag) for s in summaries]
        for position, field in enumerate(METRIC_FIELDS):
            columns[f"{tag}.{field}"] = nullable([None if c is None else c[position] for c in cells],
                                                 "int64" if field == "best_step" else "float64")
    return pa.table(columns)


def _micros(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else int(round(seconds * 1e6))


def _duration(summary: Dict[str, Any]) -> Optional[float]:
    start, end = summary.get("start_time"), summary.get("end_time")
    return None if start is None or end is None else float(end) - float(start)


def scalars(logdir: str, tags: Optional[Iterable[str]] = None,
            runs: Optional[Iterable[str]] = None) -> "pyarrow.Table":
    """Every scalar point of the runs below ``logdir``, one row each.

    Columns: ``run``, ``tag``, ``step``, ``epoch`` (the run's ``train/epoch`` at that step),
    ``samples`` (the step times the run's ``batch_size``), ``wall_time`` and ``value``; an axis a
    run does not have is null.

    Args:
        logdir: A folder of runs (or one run), or a store URL.
        tags: Only these tags: names or glob patterns (``"val/*"``); default all.
        runs: Only these runs (their ``run`` names); default all.

    Returns:
        A ``pyarrow.Table``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from unitb.query.run_facts import scalars_schema

    patterns = _patterns(tags)
    chosen = None if runs is None else set(runs)
    tables = []
    for entry in run_index.update(logdir):
        if chosen is not None and entry.name not in chosen:
            continue
        table = pq.ParquetFile(entry.points).read()  # not pq.read_table: it imports pandas
        if patterns is not None:
            names = table.column("tag").unique().to_pylist()
            keep = [name for name in names if wanted(name, patterns)]
            table = table.filter(pc.is_in(table.column("tag"), value_set=strings(keep)))
        tables.append(table)
    return pa.concat_tables(tables) if tables else scalars_schema().empty_table()


def point_files(logdir: str) -> List[str]:
    """The index's points files of every run below ``logdir`` (the ``scalars`` view reads them)."""
    return [entry.points for entry in run_index.update(logdir)]
