"""What TFCallback and TFLogger share beside the run's life (:mod:`unitb.life.lifecycle`): the
header from a Keras model, its config text and hparams, and images drawn from TF batches."""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import numpy as np

from tf_adapter import measure
from tf_adapter.probe import applying_optimizer
from unitb import schema
from unitb.write import render
from unitb.life import train_step
from unitb.life.options import LogOptions
from unitb.write.writer import RunLogger


def write_header(run: RunLogger, options: LogOptions, model=None, config_text: Optional[str] = None,
                 hparams: Optional[Mapping[str, object]] = None, at_start: bool = True) -> None:
    """The run's header (:func:`unitb.life.train_step.write_header`) from a Keras model: its
    statistics, and its JSON config when no config text is given."""
    if at_start and not config_text and model is not None and hasattr(model, "to_json"):
        config_text = model_config_text(model)
    stats = measure.model_stats(model) if model is not None and options.log_model_stats else None
    train_step.write_header(run, options, model_stats=stats, config_text=config_text, hparams=hparams,
                            at_start=at_start)


def model_config_text(model) -> str:
    """The model's Keras JSON config, as a markdown code block for the TEXT tab (Keras passes
    ``indent`` on to ``json.dumps``: one serialisation, not three)."""
    try:
        return "```\n" + model.to_json(indent=1)[:20000] + "\n```"
    except Exception:
        return f"model: {type(model).__name__}"


def keras_config_text(model, params: Mapping[str, object]) -> str:
    """What the fit trains with, for the TEXT tab: what ``compile`` was given (optimizer and its
    config, loss, metrics, ``steps_per_execution``), the mixed-precision policy, what ``fit``
    told callbacks (epochs, steps per epoch), then the model's layer config."""
    import json

    def plain(value):
        try:
            json.dumps(value)
            return value
        except (TypeError, ValueError):
            return repr(value)

    optimizer = getattr(model, "optimizer", None)
    compiled = {"optimizer": type(optimizer).__name__ if optimizer is not None else None,
                "optimizer_config": {k: plain(v) for k, v in (optimizer.get_config().items()
                                                              if optimizer is not None else [])},
                "loss": plain(getattr(model, "loss", None)),
                "metrics": [getattr(m, "name", repr(m)) for m in getattr(model, "metrics", [])],
                "steps_per_execution": plain(getattr(model, "steps_per_execution", 1)),
                "mixed_precision_policy": measure.precision_policy(model)}
    fit = {"epochs": params.get("epochs"), "steps_per_epoch": params.get("steps")}
    text = ("## compile\n```\n" + json.dumps(compiled, indent=1) + "\n```\n## fit\n```\n"
            + json.dumps(fit, indent=1) + "\n```\n## model\n")
    return text + model_config_text(model)


def keras_hparams(model, params: Mapping[str, object], steps_per_execution: int,
                  batch_size: Optional[int]) -> Dict[str, object]:
    """What a fit trains with (:mod:`unitb.write.hparams`): the shared names, the optimizer's config,
    ``steps_per_execution`` and the mixed-precision policy."""
    opt = applying_optimizer(model.optimizer)
    policy = measure.precision_policy(model)
    steps, epochs = params.get("steps"), params.get("epochs")
    values: Dict[str, object] = {
        "model": model.name, "optimizer": type(opt).__name__,
        "batch_size": batch_size, "epochs": epochs, "steps_per_execution": steps_per_execution,
        "mixed_precision_policy": policy, "amp": policy.startswith("mixed"),
        # 0 when the data's length is unknown at start (a generator, a tf.data pipeline without
        # cardinality): the column is there in every run.
        "max_steps": int(steps) * int(epochs) if steps and epochs else 0}  # type: ignore[arg-type]
    lr = measure.learning_rate_at(opt, 0)
    if lr is not None:
        values["learning_rate"] = lr
    values.update(measure.optimizer_settings(opt))
    return {key: value for key, value in values.items() if value is not None}  # unknown here: left out


def write_heatmaps(run: RunLogger, options: LogOptions, split: str, step: int, images,
                   heatmaps: Callable[[], object]) -> None:
    """``{split}/heatmap``: predicted heatmaps (N x h x w x K, channels last as TF models output
    them, from ``heatmaps()``) laid over the images — taken to the host now, drawn on the writer
    thread. Heatmaps that cannot be had or have the wrong shape: one warning, that image skipped."""
    limit = options.max_train_images
    array = np.array(images[:limit])
    try:
        heat = np.asarray(heatmaps())[:limit]
        if heat.ndim != 4 or len(heat) != len(array):
            raise ValueError(f"heatmaps must be N x h x w x K for the {len(array)} images, got shape {heat.shape}")
    except Exception as exc:
        run.warn_once("image", "heatmaps", f"no {split} heatmaps ({type(exc).__name__}: {exc}); "
                      f"{schema.heatmap(split)} skipped")
        return
    per_image = [np.moveaxis(h, -1, 0) for h in heat]  # K x h x w, as the core draws them

    def draw() -> np.ndarray:
        return render.render_batch(array, layout="HWC" if array.ndim == 4 else "auto", heatmaps=per_image)
    run.tagged_image(schema.heatmap(split), step, draw, f"the {split} heatmaps")


def render_images(options: LogOptions, images, gt_keypoints=None, pred_keypoints=None, pred_scores=None,
                  gt_boxes=None, pred_boxes=None, skeleton=None) -> Callable[[], np.ndarray]:
    """Copy a batch (N x H x W x C, as TF models take it) to the host now; return the render,
    which runs later on the writer thread."""
    limit = options.max_train_images

    def host(seq):
        return None if seq is None else [None if s is None else np.array(s) for s in list(seq)[:limit]]

    array = np.array(images[:limit])
    overlays = dict(gt_keypoints=host(gt_keypoints), pred_keypoints=host(pred_keypoints),
                    pred_scores=host(pred_scores), gt_boxes=host(gt_boxes), pred_boxes=host(pred_boxes))

    def draw() -> np.ndarray:
        return render.render_batch(array, layout="HWC" if array.ndim == 4 else "auto", kpt_thr=options.kpt_thr,
                                   skeleton=skeleton, **overlays)
    return draw
