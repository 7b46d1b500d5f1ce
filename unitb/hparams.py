"""The hyperparameters a run was trained with, for the HPARAMS tab: flattened, named alike.

Every entry point fills the shared names it can know — :data:`unitb.schema.HPARAM_KEYS`: ``framework``, ``model``,
``optimizer``, ``learning_rate``, ``batch_size``, ``max_steps``, ``epochs``, ``amp`` — so runs of
different frameworks line up column by column, then adds what only it knows (the mmengine config
flattened: ``model.backbone.depth``, ``codec.input_size``, ``optim_wrapper.optimizer.momentum``…;
Keras' optimizer config, ``steps_per_execution``, the mixed-precision policy), then the user's
own ``hparams=`` (which win). :func:`unitb.schema.hparams_dict` makes each value something the
plugin can show (a tuple or list becomes text). unitb's own logging knobs are not hyperparameters
of the model: they are in the config text, not here.

Metrics: no fixed list is declared. TensorBoard then takes every scalar of the runs as a metric
column, the same way for every run (``train/loss``, every ``val/*`` a run writes — ``val/coco/AP``,
``val/PCK`` — and the rest of the schema), so the columns line up across runs of both frameworks.
A declared list would not: TensorBoard shows the list of whichever run it finds first.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional



# mmengine config sections that describe the model and how it was trained (data pipelines and
# paths are left out: long, and not what runs are compared by).
MMENGINE_SECTIONS = ("model", "codec", "optim_wrapper", "param_scheduler", "train_cfg", "auto_scale_lr")
MAX_KEYS = 200


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
            value = config.get(section)  # type: ignore[attr-defined]
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
