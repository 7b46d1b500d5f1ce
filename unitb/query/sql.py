"""SQL over a logdir: DuckDB with three views.

- ``runs``: a row per run (:func:`unitb.query.tables.runs`);
- ``scalars``: every point, ``run, tag, step, epoch, samples, wall_time, value``, read by DuckDB
  straight from the index's Parquet files (only the columns and rows a question needs);
- ``hparams``: a row per run and hyperparameter, ``run, name, value`` (text) and ``number``
  (the value as a number where it is one), for questions over any hyperparameter by name.
"""
from __future__ import annotations

from typing import Any, List

from unitb.query import index as run_index
from unitb.query import tables


class QueryError(ValueError):
    """A question DuckDB refused (its message says why), or DuckDB missing."""


def connect(logdir: str) -> Any:
    """A DuckDB connection with the views ``runs``, ``scalars`` and ``hparams`` over ``logdir``."""
    try:
        import duckdb
    except ImportError as exc:
        raise QueryError("unitb query needs DuckDB: pip install 'unitb[query]'") from exc
    entries = run_index.update(logdir)
    runs_table = tables.runs_of(entries)
    connection = duckdb.connect()
    connection.register("runs_arrow", runs_table)
    connection.execute("CREATE VIEW runs AS SELECT * FROM runs_arrow")
    files = [entry.points for entry in entries]
    if files:
        listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)  # a view takes no parameters
        connection.execute(f"CREATE VIEW scalars AS SELECT * FROM read_parquet([{listed}])")
    else:
        connection.execute("CREATE VIEW scalars AS SELECT NULL::VARCHAR run, NULL::VARCHAR tag, NULL::BIGINT step, "
                           "NULL::DOUBLE epoch, NULL::DOUBLE samples, NULL::DOUBLE wall_time, NULL::DOUBLE value "
                           "WHERE false")
    connection.register("hparams_arrow", _hparams_long(entries))
    connection.execute("CREATE VIEW hparams AS SELECT * FROM hparams_arrow")
    return connection


def _hparams_long(entries: List[run_index.RunEntry]) -> Any:
    import pyarrow as pa

    from unitb.read.arrow_arrays import nullable

    runs: List[object] = []
    names: List[object] = []
    texts: List[object] = []
    numbers: List[object] = []
    for entry in entries:
        for name, value in sorted(entry.summary.get("hparams", {}).items()):
            runs.append(entry.name)
            names.append(name)
            texts.append(str(value))
            numbers.append(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None)
    return pa.table({"run": nullable(runs, "string"), "name": nullable(names, "string"),
                     "value": nullable(texts, "string"), "number": nullable(numbers, "float64")})


def run_query(logdir: str, sql: str) -> Any:
    """The answer to ``sql`` over ``logdir``'s views, as a ``pyarrow.Table``.

    Args:
        logdir: A folder of runs, or a store URL.
        sql: A DuckDB ``SELECT`` over ``runs``, ``scalars`` and ``hparams``.

    Returns:
        A ``pyarrow.Table``.

    Raises:
        QueryError: DuckDB refused the question (its message says why), or is not installed.
    """
    connection = connect(logdir)
    try:
        import duckdb

        try:
            relation = connection.sql(sql)
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
        if relation is None:  # a statement that answers nothing (CREATE …)
            raise QueryError("the question answered no rows: ask a SELECT over runs, scalars or hparams")
        try:
            fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # DuckDB 2, DuckDB 1
            return fetch()
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from exc
    finally:
        connection.close()
