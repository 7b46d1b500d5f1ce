"""Compare the TensorBoard layout of runs: do they show up as one family of charts?

``unitb diff`` reads each run, maps its tags to the canonical families of
:mod:`unitb.schema` and reports, in plain words, every family one run has and another
lacks, kind mismatches, a different custom-scalars layout or hparams keys, and step-axis
problems (a step written twice, validation logged at step 0 or off the training axis).
What is legitimately framework-specific (loss component and metric names, mmengine's own
LoggerHook tags) is named as a note, not counted as a mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from unitb import schema
from unitb.read.run_reader import Row, steps_by_tag

# Families whose presence depends on configuration, not on the framework.
OPTIONAL_FAMILIES = frozenset({
    "train/anomaly/*", "train/gradient_norm/pre_clip", "gradients/*", "val/loss", "train/*",
    "train/loss/*",  # a model with a single loss has no components
    "train/loss_scale",  # mixed precision only
    "train/memory/*", "train/throughput", "train/time/*",  # what a framework exposes differs
    "val/pr/*", "graph",  # what a run's task can match / log_graph
    "train/heatmap", "val/heatmap",  # models that predict heatmaps
    "activations/*",  # activation_layers
})
# Families whose member names are framework-specific (compared as families, names noted).
NAMED_FAMILIES = ("train/loss/*", "val/*", "train/*", "train/learning_rate/*", "train/time/*", "train/memory/*",
                  "val/pr/*")


@dataclass
class RunLayout:
    path: str
    families: Dict[str, Set[str]] = field(default_factory=dict)  # family -> tags
    kinds: Dict[str, Set[str]] = field(default_factory=dict)  # family -> kinds seen
    other_tags: Set[str] = field(default_factory=set)
    steps: Dict[str, Any] = field(default_factory=dict)  # canonical scalar tag -> steps (int64 array)
    layout: Optional[bytes] = None
    hparam_keys: Optional[Tuple[str, ...]] = None


@dataclass
class DiffReport:
    mismatches: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def layout_of(run_dir: str, rows: Optional[Iterable[Row]] = None) -> RunLayout:
    """The layout of one run. Without ``rows`` it reads tags and steps only (plus the two
    values it compares: the custom-scalars layout and the hparams keys)."""
    if rows is None:
        pieces = steps_by_tag(run_dir, values_of=("custom_scalars", "hparams"))
    else:
        pieces = ((r.tag, r.kind, [r.step], [r.value]) for r in rows)
    layout = RunLayout(run_dir)
    families: Dict[str, Optional[str]] = {}  # a run has few tags and many rows: match each tag once
    for tag, kind, steps, values in pieces:
        family = families.get(tag, "")
        if family == "":
            family = families[tag] = schema.family_of(tag)
        catch_all_misfit = family in ("train/*", "val/*") and kind != "scalar"
        if family is None or catch_all_misfit:
            layout.other_tags.add(tag)
            continue
        layout.families.setdefault(family, set()).add(tag)
        layout.kinds.setdefault(family, set()).add(kind)
        value = values[-1] if values else None
        if kind == "scalar":
            layout.steps.setdefault(tag, []).extend(steps)
        elif kind == "custom_scalars":
            layout.layout = value if isinstance(value, bytes) else None
        elif kind == "hparams" and tag.endswith("session_start_info"):
            layout.hparam_keys = _hparam_keys(value)
    layout.steps = {tag: np.asarray(steps, np.int64) for tag, steps in layout.steps.items()}
    return layout


def _hparam_keys(content: Any) -> Optional[Tuple[str, ...]]:
    try:
        from tensorboard.plugins.hparams import plugin_data_pb2

        data = plugin_data_pb2.HParamsPluginData.FromString(bytes(content))
        return tuple(sorted(data.session_start_info.hparams.keys()))
    except Exception:
        return None


def step_problems(layout: RunLayout) -> List[str]:
    """Step-axis problems of one run, in plain words (array work: a run has many steps)."""
    problems = []
    arrays = {tag: np.asarray(steps, np.int64) for tag, steps in layout.steps.items()}
    train_last = [int(steps.max()) for tag, steps in arrays.items() if tag.startswith("train/") and len(steps)]
    last_train = max(train_last) if train_last else None
    for tag, steps in sorted(arrays.items()):
        if tag.startswith("model/"):
            continue
        ordered = np.sort(steps, kind="stable")
        repeats = np.unique(ordered[1:][ordered[1:] == ordered[:-1]]).tolist()
        if repeats:
            problems.append(f"{layout.path}: {tag} has step(s) {_short(repeats)} more than once "
                            f"(orphaned steps after a resume?)")
        elif (np.diff(steps) < 0).any():
            problems.append(f"{layout.path}: {tag} steps go backwards")
        if tag.startswith("val/") and len(steps):
            if steps.min() <= 0:
                problems.append(f"{layout.path}: {tag} is logged at step {steps.min()}; validation belongs at "
                                f"the optimizer step it ran after (>= 1)")
            elif last_train is not None and steps.max() > last_train:
                problems.append(f"{layout.path}: {tag} reaches step {steps.max()}, past the last training "
                                f"step {last_train}: it is not on the training step axis (epoch index?)")
    return problems


def _short(values: Sequence[object]) -> str:
    head = ", ".join(str(v) for v in values[:5])
    return head + (f" ... ({len(values)} in all)" if len(values) > 5 else "")


def compare(layouts: Sequence[RunLayout]) -> DiffReport:
    """Compare every run against the first; also check each run's own step axis."""
    report = DiffReport()
    for layout in layouts:
        report.mismatches.extend(step_problems(layout))
        missing_core = [f for f in schema.CORE_FAMILIES if f not in layout.families]
        if missing_core:
            report.mismatches.append(f"{layout.path}: lacks the core families {', '.join(missing_core)}")
        if layout.other_tags:
            report.notes.append(f"{layout.path}: {len(layout.other_tags)} tag(s) of the run's own (outside the "
                                "schema: yours, or the framework's), not compared: "
                                f"{_short(sorted(layout.other_tags))}")
    base = layouts[0]
    for other in layouts[1:]:
        _compare_pair(base, other, report)
    return report


def _compare_pair(a: RunLayout, b: RunLayout, report: DiffReport) -> None:
    for family in sorted(set(a.families) | set(b.families)):
        in_a, in_b = family in a.families, family in b.families
        if in_a != in_b:
            have, lack = (a, b) if in_a else (b, a)
            count = len(have.families[family])
            message = (f"{family}: {have.path} has it ({count} tag(s), e.g. {sorted(have.families[family])[0]}), "
                       f"{lack.path} has none")
            (report.notes if family in OPTIONAL_FAMILIES else report.mismatches).append(
                message + (" (optional family)" if family in OPTIONAL_FAMILIES else ""))
            continue
        if a.kinds[family] != b.kinds[family]:
            report.mismatches.append(f"{family}: written as {sorted(a.kinds[family])} in {a.path} but as "
                                     f"{sorted(b.kinds[family])} in {b.path}")
        if family in NAMED_FAMILIES and a.families[family] != b.families[family]:
            report.notes.append(f"{family}: names differ (framework-specific): {a.path} has "
                                f"{_short(sorted(a.families[family]))}; "
                                f"{b.path} has {_short(sorted(b.families[family]))}")
    if a.layout != b.layout and a.layout is not None and b.layout is not None:
        report.mismatches.append(f"custom-scalars layout differs between {a.path} and {b.path}")
    if a.hparam_keys != b.hparam_keys and a.hparam_keys is not None and b.hparam_keys is not None:
        # What a run was trained with differs by framework and by run: the shared names are
        # filled where an entry point can know them, the rest is the run's own (never a mismatch).
        only_a = sorted(set(a.hparam_keys) - set(b.hparam_keys))
        only_b = sorted(set(b.hparam_keys) - set(a.hparam_keys))
        report.notes.append(f"hparams of the run's own: {a.path}: {_short(only_a)}; {b.path}: {_short(only_b)}")


def format_report(layouts: Sequence[RunLayout], report: DiffReport) -> str:
    lines = []
    names = sorted(set().union(*(set(layout.families) for layout in layouts)))
    width = max([len(n) for n in names] + [6])
    lines.append("family".ljust(width) + "  " + "  ".join(f"run{i + 1}" for i in range(len(layouts))))
    for name in names:
        marks = "  ".join(("yes " if name in layout.families else " -  ").ljust(4) for layout in layouts)
        lines.append(name.ljust(width) + "  " + marks)
    for index, layout in enumerate(layouts):
        lines.append(f"run{index + 1} = {layout.path}")
    for note in report.notes:
        lines.append(f"note: {note}")
    for mismatch in report.mismatches:
        lines.append(f"MISMATCH: {mismatch}")
    lines.append("parity: OK" if report.ok else f"parity: FAILED ({len(report.mismatches)} mismatch(es))")
    return "\n".join(lines)
