"""What the hook reads off an mmengine Runner: its loop's shape, the run's name, what it trains
with, and the values its message hub holds. Public Runner API only (private names live in
:mod:`torch_adapter.mmengine_internals`)."""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

from torch_adapter import measure, mmengine_internals
from unitb.write import hparams


def is_epoch_based(runner) -> bool:
    return type(runner.train_loop).__name__ != "IterBasedTrainLoop" and hasattr(runner.train_loop, "max_epochs")


def iters_per_epoch(runner) -> int:
    try:
        return len(runner.train_loop.dataloader)
    except Exception:
        return 0


def fractional_epoch(runner, batch_idx: int, step: int, per_epoch: int, epoch_based: bool) -> float:
    """The epoch as a fraction at step ``step`` (``batch_idx`` of the current epoch just ran;
    ``per_epoch``, ``epoch_based``: :func:`iters_per_epoch`, :func:`is_epoch_based`)."""
    if epoch_based:
        return runner.epoch + (batch_idx + 1) / per_epoch if per_epoch else float(runner.epoch)
    return step / per_epoch if per_epoch else 0.0


def update_may_skip(runner) -> bool:
    """Whether an iteration may apply no update (gradient accumulation)."""
    return mmengine_internals.accumulative_counts(runner.optim_wrapper) > 1


def run_name(runner) -> str:
    """The name a W&B / MLflow run gets: ``<work_dir>/<timestamp>`` (mmengine's run folder is
    ``work_dir/<timestamp>/vis_data``, and "vis_data" names nothing)."""
    return f"{os.path.basename(os.path.normpath(runner.work_dir))}/{runner.timestamp}"


def trained_with(runner, extra: Optional[Mapping[str, object]] = None) -> Dict[str, object]:
    """What the run was trained with (:mod:`unitb.write.hparams`): the shared names, the config's
    model / codec / optimizer / schedule / train_cfg sections flattened, then ``extra``."""
    wrapper = runner.optim_wrapper
    values: Dict[str, object] = {"max_steps": runner.max_iters,
                                 "model": type(measure.unwrap_model(runner.model)).__name__,
                                 "amp": getattr(wrapper, "loss_scaler", None) is not None}
    if is_epoch_based(runner):
        values["epochs"] = runner.max_epochs
    try:
        values.update(measure.optimizer_hparams(wrapper))
        values["batch_size"] = runner.train_dataloader.batch_size
    except Exception:
        pass
    cfg = getattr(runner, "cfg", None)
    return hparams.merged(values, hparams.from_sections(cfg) if cfg else None, extra)


def config_text(runner, backend) -> Optional[str]:
    """The config for the TEXT tab; None when the Runner wrote it into the TensorBoard writer
    already (one card per run)."""
    cfg = getattr(runner, "cfg", None)
    if cfg is None or (backend is not None and cfg):
        return None
    return getattr(cfg, "pretty_text", None)


def hub_metrics(runner) -> Dict[str, float]:
    """Validation metrics from the message hub, for runners that do not pass ``metrics`` to
    ``after_val_epoch``."""
    scalars = runner.message_hub.log_scalars
    return {key[len("val/"):]: buf.current() for key, buf in scalars.items() if key.startswith("val/")}


def pre_clip_norm(runner) -> Optional[float]:
    """The gradient norm mmengine's clipping measured before it clipped (norm clipping only)."""
    wrapper = getattr(runner, "optim_wrapper", None)
    if not getattr(wrapper, "clip_grad_kwargs", None):
        return None
    if wrapper.clip_grad_kwargs.get("type", "norm") != "norm":
        return None
    try:
        return float(runner.message_hub.get_scalar("train/grad_norm").current())
    except Exception:
        return None
