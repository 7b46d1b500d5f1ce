"""``unitb report``: one offline HTML page comparing any runs below a folder, of both frameworks.

The page carries plotly.js and the runs' data itself (it opens on a cluster without internet and
can be mailed as one file) and does the comparing in the browser: the runs table (sort by a
column, filter by any column's value, pick runs), the chosen tags' curves against step, epoch,
samples seen or wall time with TensorBoard's smoothing, runs grouped by a hyperparameter (the
group's mean with a min–max band, over seeds for example), parallel coordinates and each
hyperparameter's importance for a metric, all over the runs the table shows.

A curve keeps at most ``MAX_POINTS`` points, and fewer when the page holds many curves (the page
holds ``POINTS_BUDGET`` points in all, never fewer than ``MIN_POINTS`` a curve), evenly spaced with
its last one always kept: a page of a thousand long runs stays some tens of megabytes.
"""
from __future__ import annotations

import datetime
import html
import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from unitb import schema
from unitb.query import index as run_index
from unitb.query import tables

MAX_POINTS = 1000
MIN_POINTS = 50
POINTS_BUDGET = 2_000_000
DEFAULT_TAGS = ("train/loss", "val/*")
AXES = ("step", "epoch", "samples", "wall_time")
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_page.html")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


def _thinned(count: int, most: int) -> List[int]:
    """Indices of at most ``most`` of ``count`` points, evenly spaced, the last one kept."""
    if count <= most:
        return list(range(count))
    stride = count / (most - 1)
    return sorted({min(count - 1, int(i * stride)) for i in range(most - 1)} | {count - 1})


def page_data(logdir: str, tags: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """What the page shows, as JSON-ready data: the runs table and every chosen curve."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    patterns = list(tags) if tags else list(DEFAULT_TAGS)
    entries = run_index.update(logdir)
    table = tables.runs_of(entries, tags=patterns)
    columns = [name for name in table.column_names if name != "path"]
    rows = [[_plain(row[name]) for name in columns] for row in table.to_pylist()]
    curves: Dict[str, Dict[str, Dict[str, List[Any]]]] = {}
    chosen = set()
    drawn = sum(1 for entry in entries for tag in entry.summary.get("metrics", {}) if tables.wanted(tag, patterns))
    most = max(MIN_POINTS, min(MAX_POINTS, POINTS_BUDGET // max(1, drawn)))
    for entry in entries:
        points = pq.ParquetFile(entry.points).read()  # not pq.read_table: it imports pandas
        per_tag: Dict[str, Dict[str, List[Any]]] = {}
        for tag in points.column("tag").unique().to_pylist():
            if not tables.wanted(tag, patterns):
                continue
            mine = points.filter(pc.equal(points.column("tag"), tag)).sort_by("step")
            keep = _thinned(mine.num_rows, most)
            per_tag[tag] = {}
            for axis in AXES + ("value",):
                values = mine.column(axis).to_pylist()
                per_tag[tag][axis] = [_plain(values[i]) for i in keep]
            chosen.add(tag)
        curves[entry.name] = per_tag
    found = {name for entry in entries for name in entry.summary.get("hparams", {})} - set(tables.LEFT_OUT_HPARAMS)
    hparams = [n for n in schema.HPARAM_KEYS if n in found] + sorted(found - set(schema.HPARAM_KEYS))  # shared first
    hparam_columns = [tables.hparam_column(n) for n in hparams]
    return {"logdir": logdir, "columns": columns, "rows": rows, "curves": curves, "tags": sorted(chosen),
            "hparams": [c for c in hparam_columns if c in columns],
            "metrics": [c for c in columns if c.endswith((".best", ".last"))],
            "written": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def write_report(logdir: str, out: str, tags: Optional[Iterable[str]] = None) -> int:
    """Write the page comparing the runs below ``logdir`` to ``out``.

    Args:
        logdir: A folder of runs, or a store URL.
        out: The HTML file to write.
        tags: The curves to draw: names or glob patterns (default: ``train/loss`` and ``val/*``).

    Returns:
        How many runs the page compares (0: none found, nothing written).
    """
    from plotly.offline import get_plotlyjs

    data = page_data(logdir, list(tags) if tags else None)
    if not data["rows"]:
        return 0
    with open(PAGE, encoding="utf-8") as handle:
        template = handle.read()
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = (template.replace("/*PLOTLY*/", get_plotlyjs())
            .replace("/*DATA*/null", payload)
            .replace("<!--TITLE-->", html.escape(f"unitb report · {os.path.basename(os.path.normpath(logdir))}")))
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(page)
    return len(data["rows"])
