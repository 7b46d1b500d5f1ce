"""The one path from a training step's values to the schema's scalars, and the run's header.

Every entry point — the mmengine hook, ``TorchLogger``, ``TFCallback``, ``TFLogger`` — hands
its step's values here, so one rule decides what becomes ``train/loss``, what a loss
component and what a metric:

- a **loss** is every value passed as ``losses=``, and every value of ``values=`` whose name is
  one of :data:`~unitb.schema.TOTAL_LOSS_NAMES` or contains ``loss`` (mmengine ``log_vars``,
  Keras logs); every value passed as ``metrics=``, and every other value of ``values=``, is a
  training **metric** (``train/{name}``);
- the **total** (``train/loss``) is the first of ``TOTAL_LOSS_NAMES``, in that order,
  that is present: ``loss``, then ``total_loss``, then ``total``. Another of those names
  present in the same step is not dropped: it is written as a component
  (``train/loss/total``), and one warning says so. The rule does not depend on the order
  of the dict or on the process.
- every other loss is a **component** ``train/loss/{name}`` (``loss_kpt`` -> ``kpt``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from unitb import schema
from unitb.life.options import LogOptions
from unitb.write.writer import RunLogger, undefined_metric
from unitb.schema import TOTAL_LOSS_NAMES


@dataclass
class TrainValues:
    """A step's values, split by the rule above."""

    total: object = None
    total_name: Optional[str] = None
    components: Dict[str, object] = field(default_factory=dict)
    metrics: Dict[str, object] = field(default_factory=dict)
    other_totals: Tuple[str, ...] = ()  # total-like names kept as components


def is_loss_name(name: str) -> bool:
    return name in TOTAL_LOSS_NAMES or "loss" in name


def split_train_values(values: Optional[Mapping[str, object]] = None,
                       losses: Optional[Mapping[str, object]] = None,
                       metrics: Optional[Mapping[str, object]] = None) -> TrainValues:
    """Split ``values`` (losses and metrics mixed, told apart by name), ``losses`` (all
    losses) and ``metrics`` (all metrics) by the module's rule."""
    loss_values: Dict[str, object] = {str(k): v for k, v in (values or {}).items() if is_loss_name(str(k))}
    train_metrics = {str(k): v for k, v in (values or {}).items() if not is_loss_name(str(k))}
    loss_values.update({str(k): v for k, v in (losses or {}).items()})
    train_metrics.update({str(k): v for k, v in (metrics or {}).items()})
    present = [name for name in TOTAL_LOSS_NAMES if name in loss_values]
    out = TrainValues(metrics=train_metrics)
    if present:
        out.total_name = present[0]
        out.total = loss_values[present[0]]
        out.other_totals = tuple(present[1:])
    out.components = {name: value for name, value in loss_values.items() if name != out.total_name}
    return out


def warn_other_totals(run: RunLogger, split: TrainValues) -> None:
    """Say once which of several total-like names became ``train/loss``."""
    if split.other_totals:
        names = ", ".join(repr(n) for n in (split.total_name,) + split.other_totals)
        run.warn_once("loss", "totals", f"the step's values hold {names}: {split.total_name!r} is train/loss, "
                      + ", ".join(f"{n!r} is {schema.loss_component(n)}" for n in split.other_totals))


def write_train_step(run: RunLogger, options: LogOptions, step: int, values: Optional[Mapping[str, object]] = None, *,
                     losses: Optional[Mapping[str, object]] = None, metrics: Optional[Mapping[str, object]] = None,
                     learning_rates: Optional[Mapping[object, object]] = None, epoch: object = None,
                     loss_scale: object = None, speed: Optional[Mapping[str, object]] = None) -> None:
    """Write the scalars of training step ``step`` that the caller found due: losses and
    training metrics (``log_loss``), learning rates (``log_lr``), the fractional epoch, the
    loss scale, and the speed point (``log_speed``; the caller measures it only when due)."""
    split = split_train_values(values, losses, metrics)
    warn_other_totals(run, split)
    for tag, value, kind in step_scalars(options, split, learning_rates, epoch, loss_scale):
        run.scalar(tag, value, step, kind)
    if options.log_speed and speed:
        run.speed(step, speed)


def step_scalars(options: LogOptions, split: TrainValues, learning_rates: Optional[Mapping[object, object]] = None,
                 epoch: object = None, loss_scale: object = None) -> List[Tuple[str, object, str]]:
    """A step's scalars as ``(tag, value, what a non-finite value is)``, in the order they are
    written: the one tag mapping of an eager write (:func:`write_train_step`) and of summary ops
    in a graph (``TFLogger`` inside ``tf.function``)."""
    out: List[Tuple[str, object, str]] = []
    if options.log_loss:
        if split.total is not None:
            out.append((schema.TRAIN_LOSS, split.total, "loss"))
        out += [(schema.loss_component(name), value, "loss") for name, value in split.components.items()]
        out += [(schema.metric(schema.TRAIN, name), value, "metric") for name, value in split.metrics.items()
                if not undefined_metric(name, value)]
    if options.log_lr and learning_rates:
        out += [(schema.learning_rate(group), value, "value") for group, value in learning_rates.items()]
    if epoch is not None:
        out.append((schema.TRAIN_EPOCH, epoch, "value"))
    if loss_scale is not None:
        out.append((schema.LOSS_SCALE, loss_scale, "value"))
    return out


def write_header(run: RunLogger, options: LogOptions, *, model_stats: Optional[Tuple[int, int, float]] = None,
                 config_text: Optional[str] = None, hparams: Optional[Mapping[str, object]] = None,
                 at_start: bool = True) -> None:
    """The once-per-run records at step 0: model statistics (``log_model_stats``), the
    config text, the hparams (:mod:`unitb.write.hparams`; None: written later by the entry point)
    and the custom-scalars layout. Every entry point writes its header here. A run resumed
    past step 0 (``at_start=False``) has its header: only the model statistics are kept, for
    their point at the last step."""
    if model_stats is not None and options.log_model_stats:
        run.model_stats(*model_stats, at_start=at_start)
    if not at_start:
        return
    if config_text:
        run.config(config_text)
    if hparams:
        run.hparams(hparams)
    run.layout()
