"""How a sweep stands, read from its study: the table ``unitb sweep status`` prints and the one
progress line agents show while they run."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from unitb.sweep import liveness
from unitb.sweep.agent import ERROR, EXIT_CODE, INTERRUPTED, LATE, RERUN_OF, RUN, SKIPPED, VALUES


@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  # complete, pruned, running, waiting, failed, interrupted
    values: Dict[str, Any]  # what the script was given
    value: Optional[float]  # the metric's last value (a pruned trial: at the prune)
    seconds: Optional[float]
    run: str
    note: str  # why it failed, where it was pruned
    pruned_at: Optional[int] = None  # the step ``value`` was taken at, for a pruned trial


STALE = "its agent stopped answering (no heartbeat): the host or the agent died"
_ORDER = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "failed": 4, "interrupted": 5}


def _gone(trial) -> str:
    """Why a running trial is not running: its agent on this host is gone ('' when it runs, or
    runs elsewhere: only its heartbeat can tell, and the agents read it)."""
    who = trial.system_attrs.get(liveness.AGENT_ATTR)
    if trial.state.name != "RUNNING" or not isinstance(who, dict) or not liveness.on_this_host(who):
        return ""
    if liveness.alive(who):
        return ""
    return f"its agent ({liveness.describe(who)}) is gone; the next agent fails it and runs its parameters again"


def _state(trial, gone: str) -> str:
    if trial.user_attrs.get(INTERRUPTED):
        return "interrupted"
    if gone:
        return "failed"
    return {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "WAITING": "waiting",
            "FAIL": "failed"}[trial.state.name]


def _value(trial) -> Optional[float]:
    if trial.value is not None:
        return float(trial.value)
    steps = trial.intermediate_values
    return float(steps[max(steps)]) if steps else None


def _note(trial, state: str, late: Dict[str, Any], gone: str) -> str:
    if state == "pruned" and trial.intermediate_values:
        return f"pruned at step {max(trial.intermediate_values)}"
    if gone:
        return gone
    if state == "failed" and isinstance(late.get(str(trial.number)), dict):
        reason = trial.user_attrs.get(ERROR) or STALE
        return f"{reason}; yet it went on and {late[str(trial.number)].get('outcome')} (its run is kept)"
    if state == "failed":
        if ERROR not in trial.user_attrs and EXIT_CODE not in trial.user_attrs:
            return STALE  # failed by another agent's heartbeat check
        return str(trial.user_attrs.get(ERROR) or f"exit code {trial.user_attrs.get(EXIT_CODE)}")
    if state == "waiting" and RERUN_OF in trial.user_attrs:
        return f"runs trial {trial.user_attrs[RERUN_OF]} again"
    if "failed_trial" in trial.system_attrs:
        return f"runs trial {trial.system_attrs['retry_history'][-1]} again (its agent died)"
    return ""


def trial_rows(study, goal: str = "minimize") -> List[TrialRow]:
    """Every trial but the skipped ones, best first: complete by the metric, then pruned ones
    (by their value at the prune), running, waiting, failed, interrupted."""
    rows = []
    late = {key[len(LATE):]: value for key, value in study.user_attrs.items() if key.startswith(LATE)}
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(SKIPPED):
            continue
        gone = _gone(trial)
        state = _state(trial, gone)
        seconds = None
        if trial.datetime_start is not None:
            end = trial.datetime_complete
            if end is not None:
                seconds = (end - trial.datetime_start).total_seconds()
        pruned_at = max(trial.intermediate_values) if state == "pruned" and trial.intermediate_values else None
        rows.append(TrialRow(trial.number, state, dict(trial.user_attrs.get(VALUES) or trial.params), _value(trial),
                             seconds, str(trial.user_attrs.get(RUN, "")), _note(trial, state, late, gone), pruned_at))
    sign = -1.0 if goal == "maximize" else 1.0

    def key(row: TrialRow):
        value = row.value if row.value is not None and not math.isnan(row.value) else math.inf * sign
        return (_ORDER[row.state], sign * value, row.number)

    return sorted(rows, key=key)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def cells(rows: List[TrialRow], metric: str, digits: int = 4, seconds: str = "s") -> Tuple[List[str], List[List[str]]]:
    """The header and the cells of the trials' table: trial, state, each parameter, the metric
    (to ``digits`` significant digits; a pruned trial's says the step it was taken at, which is
    not a final value), time (followed by ``seconds``), run folder."""
    names = list(dict.fromkeys(name for row in rows for name in row.values))
    header = ["trial", "state", *names, metric, "time", "run"]
    body = [[str(row.number), row.state, *(_text(row.values.get(name, "")) for name in names),
             _metric_cell(row, digits), "" if row.seconds is None else f"{row.seconds:.1f}{seconds}", row.run]
            for row in rows]
    return header, body


def _metric_cell(row: TrialRow, digits: int) -> str:
    if row.value is None:
        return ""
    return f"{row.value:.{digits}g}" + (f" at step {row.pruned_at}" if row.pruned_at is not None else "")


def table(rows: List[TrialRow], metric: str) -> str:
    """A plain-text table: trial, state, each parameter, the metric, time, run folder; then why
    each failed or waiting trial is so (a pruned one's step is in its metric cell)."""
    header, body = cells(rows, metric)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]]
    for row in rows:
        if row.note and row.state in ("failed", "waiting"):
            first = row.note.splitlines()[0] if row.note.strip() else row.note
            lines.append(f"trial {row.number}: {first}")
    return "\n".join(lines)


def progress(study, ident: str, metric: str, goal: str = "minimize") -> str:
    """One line: trials done, running, pruned and failed, and the best so far."""
    rows = trial_rows(study, goal)
    count = {state: sum(row.state == state for row in rows) for state in _ORDER}
    line = (f"sweep {ident}: {count['complete']} done, {count['running']} running, {count['pruned']} pruned, "
            f"{count['failed']} failed")
    best = next((row for row in rows if row.state == "complete" and row.value is not None), None)
    if best is not None:
        line += f" — best {metric} {best.value:.6g} (trial {best.number})"
    return line


def none_completed(study) -> Optional[str]:
    """Why a sweep has nothing to show, in one line: no trial completed, and the first failed
    trial's reason (its first line); None when a trial completed, or none ended yet."""
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SKIPPED)]
    if any(t.state.name == "COMPLETE" for t in trials) or not any(t.state.is_finished() for t in trials):
        return None
    failed = sorted((t for t in trials if t.state.name == "FAIL"), key=lambda t: t.number)
    if not failed:
        return f"no trial completed ({len(trials)} trial(s), none of them ran to its end)"
    first = failed[0]
    reason = str(first.user_attrs.get(ERROR) or "no reason recorded").strip()
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    said = lines[0] + (f" … {lines[-1]}" if len(lines) > 1 else "")
    return f"no trial completed ({len(failed)} of {len(trials)} failed); the first, trial {first.number}: {said}"
