"""The entry points' keyword options as types, so an editor completes them and mypy checks them.

Every entry point takes its options as ``**kwargs`` (one list, :class:`~unitb.life.options.LogOptions`
and :class:`~unitb.store.run_location.StoreOptions`, validated once) typed with these
``TypedDict``s through ``Unpack`` (PEP 692): a misspelt ``scalar_intervl=`` or a string where an
interval goes is a type error, and an editor lists every option with its type. ``help()`` shows
their defaults (:func:`unitb.life.options.show_options`). A test holds these to the dataclasses'
fields, name for name and type for type.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple, TypedDict


class LogKeywords(TypedDict, total=False):
    """The fields of :class:`~unitb.life.options.LogOptions`."""

    log_loss: bool
    log_grad_norm: bool
    log_weight_hist: bool
    log_val_metrics: bool
    log_train_images: bool
    log_val_images: bool
    log_lr: bool
    log_model_stats: bool
    log_speed: bool
    log_pr_curves: bool
    embedding_layer: Optional[str]
    activation_layers: Tuple[str, ...]
    log_grad_hist: bool
    log_graph: bool
    grad_norm_interval: int
    weight_hist_interval: int
    train_image_interval: int
    val_image_interval: int
    max_layers_to_log: int
    max_train_images: int
    kpt_thr: float
    scalar_interval: Optional[int]
    adaptive_interval: bool
    max_log_mb: Optional[float]
    raise_on_nonfinite: bool
    async_writes: bool
    profile_steps: Optional[Tuple[int, int]]
    backends: Any
    backend_timeout: float
    resume_wait: float
    system_interval: float
    alerts: Any


class StoreKeywords(TypedDict, total=False):
    """The fields of :class:`~unitb.store.run_location.StoreOptions` (a URL run's store)."""

    storage_options: Optional[Mapping[str, Any]]
    spool_dir: Optional[str]
    upload_interval: float
    upload_timeout: float
    max_spool_mb: Optional[float]


class RunKeywords(LogKeywords, StoreKeywords, total=False):
    """What ``TorchLogger``, ``TFCallback`` and ``TFLogger`` take besides their own arguments."""


class HookKeywords(LogKeywords, total=False):
    """What ``EnhancedTensorBoardHook`` takes besides its own arguments: its store is ``out_dir``
    with ``backend_args``, and it uploads mmengine's own folder (no ``storage_options``, no ``spool_dir``)."""

    upload_interval: float
    upload_timeout: float
    max_spool_mb: Optional[float]
