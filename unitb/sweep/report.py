"""One HTML page for a sweep: its trials best first, and Optuna's plotly figures (optimization
history, every trial's learning curve — pruned ones up to their prune —, parallel coordinates,
parameter importances). The page carries plotly.js itself, so it
opens on a cluster without internet and can be mailed as one file."""
from __future__ import annotations

import html
import time
from typing import Any, Callable, List, Tuple

from unitb.sweep.status import TrialRow, cells, trial_rows
from unitb.sweep.study import Sweep

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin-bottom: 4px; } .sub { color: #666; margin-bottom: 16px; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 24px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; }
th { background: #f4f4f4; } tr.best td { font-weight: 600; }
.figures > div { margin-bottom: 16px; max-width: 1100px; }
.note { color: #666; font-size: 13px; }
"""


def _table(rows: List[TrialRow], metric: str) -> str:
    header, body = cells(rows, metric, digits=6, seconds=" s")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    lines = []
    for index, (row, line) in enumerate(zip(rows, body)):
        title = f' title="{html.escape(row.note)}"' if row.note else ""
        best = ' class="best"' if index == 0 and row.state == "complete" else ""
        lines.append(f"<tr{best}{title}>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def figures(study, metric: str, searched: List[str]) -> List[str]:
    """The figures as HTML pieces (plotly.js inlined in the first), the metric by its name and
    only the ``searched`` parameters (a constant has no importance); a figure Optuna cannot draw
    yet (importances need two finished trials that differ) is named instead."""
    from optuna import visualization

    pieces: List[str] = []
    makers: List[Tuple[str, Callable[[Any], Any]]] = [
        ("optimization history", lambda s: visualization.plot_optimization_history(s, target_name=metric)),
        # every trial's metric as the agent reported it, pruned ones up to their prune
        ("learning curves", visualization.plot_intermediate_values),
        ("parallel coordinates", lambda s: visualization.plot_parallel_coordinate(s, params=searched,
                                                                                 target_name=metric)),
        ("parameter importances", lambda s: visualization.plot_param_importances(s, params=searched,
                                                                                target_name=metric))]
    for title, make in makers:
        try:
            figure = make(study)
        except Exception as exc:  # too few trials for this figure
            pieces.append(f'<p class="note">No {title}: {html.escape(str(exc))}</p>')
            continue
        pieces.append(figure.to_html(full_html=False, include_plotlyjs=not any("<script" in p for p in pieces),
                                     default_height=420, default_width="100%", config={"responsive": True}))
    return pieces


def write(sweep: Sweep, out: str) -> str:
    """Write the page for ``sweep`` to ``out``; returns ``out``."""
    study = sweep.study()
    metric = sweep.config.metric
    assert metric is not None
    rows = trial_rows(study, metric.goal)
    searched = [p.name for p in sweep.config.parameters if p.searched]
    title = f"Sweep {sweep.ident}"
    page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<div class='sub'>{html.escape(sweep.config.method)} search, {metric.goal} "
            f"<b>{html.escape(metric.name)}</b> · {len(rows)} trials · {html.escape(sweep.folder)} · "
            f"written {time.strftime('%Y-%m-%d %H:%M')}</div>",
            _table(rows, metric.name),
            "<div class='figures'>", *(f"<div>{piece}</div>" for piece in figures(study, metric.name, searched)),
            "</div>",
            "</body></html>"]
    with open(out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(page))
    return out
