"""The hyperparameters a run was trained with, for the HPARAMS tab: flattened, named alike.

Every entry point fills the shared names it can know — :data:`unitb.schema.HPARAM_KEYS`: ``framework``, ``model``,
``optimizer``, ``learning_rate``, ``batch_size``, ``max_steps``, ``epochs``, ``amp`` — so runs of
different frameworks line up column by column, then adds what only it knows (the mmengine config
flattened: ``model.backbone.depth``, ``codec.input_size``, ``optim_wrapper.optimizer.momentum``…;
Keras' optimizer config, ``steps_per_execution``, the mixed-precision policy), then the user's
own ``hparams=`` (which win). :func:`unitb.schema.hparams_dict` makes each value something the
plugin can show (a tuple or list becomes text). unitb's own logging knobs are not hyperparameters
of the model: they are in the config text, not here.

A run declares no metrics of its own: TensorBoard takes one run's declaration for the whole
page, so a Keras run's list would hide the mmpose run's ``val/coco/AP``. What the tab opens on is
declared once for a log root instead (:func:`write_experiment`, ``unitb hparams LOGDIR``, run by
the demo): the shared names every entry point fills, the hyperparameters every run has (a sweep's
parameters among them), and as metrics ``train/loss`` and every ``val/*`` scalar any run wrote —
the union over the runs of both frameworks. It is one event file in a folder of its own below the
root, so TensorBoard lists it under a name that says what it is
(:data:`unitb.files.names.EXPERIMENT_FOLDER`), and unitb's own readers skip it
(:data:`unitb.files.names.EXPERIMENT_SUFFIX`).
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from unitb.files.event_files import event_file_name
from unitb.files.names import EXPERIMENT_FOLDER, EXPERIMENT_LOCK, EXPERIMENT_SUFFIX
from unitb.schema import MODEL_SIZE_MB, MODEL_TOTAL_PARAMETERS, SWEEP_PRUNED_AT_STEP
from unitb.read import run_reader
from unitb.schema import HPARAM_KEYS
from unitb.write import protos


# mmengine config sections that describe the model and how it was trained (data pipelines and
# paths are left out: long, and not what runs are compared by).
MMENGINE_SECTIONS = ("model", "codec", "optim_wrapper", "param_scheduler", "train_cfg", "auto_scale_lr")
MAX_KEYS = 200
# The model's size among the metric columns, after the validation metrics.
MODEL_SIZE = (MODEL_TOTAL_PARAMETERS, MODEL_SIZE_MB)


def flatten(values: Mapping[str, object], prefix: str = "", out: Optional[Dict[str, object]] = None,
            limit: int = MAX_KEYS) -> Dict[str, object]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (lists stay whole: one
    column each), at most ``limit`` keys."""
    out = {} if out is None else out
    for key, value in values.items():
        if len(out) >= limit:
            break
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flatten(value, name + ".", out, limit)
        else:
            out[name] = value
    return out


def from_sections(config: Mapping[str, object], sections: Iterable[str] = MMENGINE_SECTIONS) -> Dict[str, object]:
    """The named sections of a config (a dict or an mmengine ``Config``), flattened."""
    out: Dict[str, object] = {}
    for section in sections:
        try:
            value = config.get(section)
        except Exception:
            value = None
        if isinstance(value, Mapping):
            flatten(value, section + ".", out)
        elif value is not None:
            out[section] = value
    return out


def merged(*layers: Optional[Mapping[str, object]]) -> Dict[str, object]:
    """Later layers win: shared names, then the entry point's own, then the user's."""
    out: Dict[str, object] = {}
    for layer in layers:
        out.update(layer or {})
    return out


def run_columns(run_dir: str, also: Sequence[str] = ()) -> Tuple[Dict[str, object], List[str]]:
    """A run's hyperparameters and the metrics it can show: ``train/loss``, its ``val/*``
    scalars, the scalars named in ``also`` (a sweep's metric) and the model's size (a constant
    at step 0 that the SCALARS tab can hide: its "Ignore outliers" default drops the largest
    run's only point from the y-range)."""
    metrics = []
    for entry in run_reader.tag_summary(run_dir):
        tag, kind = str(entry["tag"]), entry["kind"]
        if kind == "scalar" and (tag == "train/loss" or tag.startswith("val/") or tag in MODEL_SIZE or tag in also):
            metrics.append(tag)
    return run_reader.hparams(run_dir), metrics


# TensorBoard's HPARAMS tab ticks 5 hyperparameter columns (those declared ``differs`` first, by
# name) and the first 5 metric columns; the rest are listed, unticked.
SHOWN = 5
FIRST_SHOWN = ("framework", "model", "optimizer", "learning_rate", "batch_size")


def shown_first(columns: Sequence[str], shared: Sequence[str] = ()) -> List[str]:
    """The hyperparameters the tab ticks: a sweep's own (``shared``) first, then
    :data:`FIRST_SHOWN`, at most :data:`SHOWN`."""
    ordered = [name for name in (*shared, *FIRST_SHOWN) if name in columns]
    return list(dict.fromkeys(ordered))[:SHOWN]


def metric_order(tag: str) -> Tuple[int, str]:
    """``train/loss``, ``val/loss``, the other ``val/*`` by name, then the model's size: the
    first five are ticked."""
    return ({"train/loss": 0, "val/loss": 1}.get(tag, 3 if tag in MODEL_SIZE else 2), tag)


def experiment_columns(run_dirs: Sequence[str], shared: Sequence[str] = (),
                       first_metrics: Sequence[str] = ()) -> Tuple[Dict[str, List[object]], List[str]]:
    """What the HPARAMS tab opens on for these runs: ``{name: values seen}`` for the shared
    names (:data:`unitb.schema.HPARAM_KEYS` and ``shared``) any run has plus the names every
    run has, and the union of their metrics (``first_metrics`` that any run wrote first, the
    others ordered by :func:`metric_order`)."""
    per_run = [run_columns(run, first_metrics) for run in run_dirs]
    everywhere = set.intersection(*(set(values) for values, _ in per_run)) if per_run else set()
    wanted = [k for k in (*HPARAM_KEYS, *shared) if any(k in values for values, _ in per_run)]
    wanted += sorted(everywhere - set(wanted))
    columns: Dict[str, List[object]] = {}
    for name in wanted:
        seen: List[object] = []
        for values, _ in per_run:
            if name in values and values[name] not in seen:
                seen.append(values[name])
        columns[name] = seen
    found = {m for _, found in per_run for m in found}
    first = [m for m in dict.fromkeys(first_metrics) if m in found]
    metrics = first + sorted(found - set(first), key=metric_order)
    return columns, metrics


# A column header where the name alone reads two ways: a sweep's ``lr`` beside the optimizer's own.
LEARNING_RATE_LABEL = "learning_rate (the optimizer's, at step 0)"
PRUNED_LABEL = "pruned at step (empty: ran to the end)"


def write_experiment(logdir: str, shared: Sequence[str] = (), first_metrics: Sequence[str] = (),
                     swept: Sequence[str] = ()) -> Optional[str]:
    """Write the log root's experiment summary (see the module docstring) for every run below
    ``logdir``, replacing an earlier one; returns its path (None when ``logdir`` holds no run).
    A sweep passes its parameters as ``shared`` and ``swept`` (their headers say so) and its
    metric as ``first_metrics``."""
    runs = run_reader.find_runs(logdir)
    if not runs:
        return None
    columns, metrics = experiment_columns(runs, shared, first_metrics)
    labels = {"learning_rate": LEARNING_RATE_LABEL, **{name: f"{name} (swept)" for name in swept},
              SWEEP_PRUNED_AT_STEP: PRUNED_LABEL}
    summary = protos.experiment_summary(columns, metrics, shown=shown_first(list(columns), shared), labels=labels)
    folder = os.path.join(logdir, EXPERIMENT_FOLDER)
    os.makedirs(folder, exist_ok=True)
    with _only_writer(logdir):  # the agents of one sweep end together: one summary is left, whole
        for place in (logdir, folder):  # the root held it before it had a folder of its own
            for name in os.listdir(place):
                if name.endswith(EXPERIMENT_SUFFIX):
                    os.remove(os.path.join(place, name))
        path = os.path.join(folder, event_file_name(time.time(), EXPERIMENT_SUFFIX))
        protos.write_events(path, [(summary, 0)])
    return path


@contextlib.contextmanager
def _only_writer(logdir: str) -> Iterator[None]:
    """Hold the log root's summary lock (an ``flock``, gone with the process that held it)."""
    try:
        import fcntl
    except ImportError:  # no flock here: the last writer wins
        yield
        return
    with open(os.path.join(logdir, EXPERIMENT_LOCK), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
