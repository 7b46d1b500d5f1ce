"""The parameters every adapter accepts, validated once, with the mmpose hook's defaults.

``EnhancedTensorBoardHook``, ``TorchLogger``, ``TFCallback`` and ``TFLogger`` all build a
:class:`LogOptions`, so a bad argument fails the same way everywhere (a ``ValueError``
naming the parameter, at construction) and equal settings log at equal steps.
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, Optional, Tuple

from unitb.backends.registry import check_backends
from unitb.life.policy import (EveryNEpochs, StepPolicy, check_fraction, check_interval, check_non_negative,
                               make_step_policy)
from unitb.life.profiling import check_profile_steps
from unitb.life.alerts import check_alerts
from unitb.life.system_metrics import check_system_interval


@dataclass
class LogOptions:
    """What every entry point takes besides its own arguments, with the mmpose hook's defaults.

    Each field is a keyword of ``EnhancedTensorBoardHook``, ``TorchLogger``, ``TFCallback`` and
    ``TFLogger`` (where one entry point cannot use a field, its text says so). The reference
    page of the documentation is made from these fields and their texts.
    """

    log_loss: bool = True
    """Write ``train/loss`` and ``train/loss/{component}``."""
    log_grad_norm: bool = True
    """Write ``train/gradient_norm/global`` and ``train/gradient_norm/layers/{layer}`` every ``grad_norm_interval``
    steps."""
    log_weight_hist: bool = True
    """Write ``weights/{layer}`` histograms every ``weight_hist_interval`` epochs."""
    log_val_metrics: bool = True
    """Write the validation metrics ``val/{metric}`` at the global step of each validation."""
    log_train_images: bool = True
    """Write ``train/image`` (inputs with ground truth and predictions) every ``train_image_interval`` steps."""
    log_val_images: bool = True
    """Write ``val/image`` from every ``val_image_interval``-th validation batch."""
    log_lr: bool = True
    """Write ``train/learning_rate/{group}``: the learning rate each step used."""
    log_model_stats: bool = True
    """Write ``model/total_parameters``, ``model/trainable_parameters`` and ``model/model_size_mb`` at step 0 and the
    last step."""
    log_speed: bool = True
    """Write ``train/time/*``, ``train/throughput`` and ``train/memory/*`` at ``scalar_interval``."""
    log_pr_curves: bool = True
    """(hook, ``TFCallback``) Write ``val/pr/keypoints_oks50`` and ``_oks75``: keypoints matched by OKS at each
    validation."""
    embedding_layer: Optional[str] = None
    """(hook, ``TFCallback`` with ``embedding_data=``) A layer's name (torch module path or Keras layer name): its
    outputs on validation samples go to the PROJECTOR as ``val/features``."""
    activation_layers: Tuple[str, ...] = ()
    """(hook, ``TorchLogger``, ``TFCallback``) Layers whose outputs get histograms ``activations/{layer}`` at the steps
    gradient norms are measured."""
    log_grad_hist: bool = False
    """Also write ``gradients/{layer}`` histograms at the gradient-norm steps."""
    log_graph: bool = False
    """Write the model's graph to the GRAPHS tab once per fresh run (tracing runs the model once more)."""
    grad_norm_interval: int = 100
    """Steps between gradient-norm points (step 1 is always one)."""
    weight_hist_interval: int = 1
    """Epochs between weight histograms."""
    train_image_interval: int = 500
    """Steps between training images."""
    val_image_interval: int = 10
    """Every N-th validation batch is drawn (mmengine)."""
    max_layers_to_log: int = 20
    """At most this many layers get per-layer norms and histograms, spread over the model and fixed for the run."""
    max_train_images: int = 4
    """Only these images of the first batch are kept, on the CPU."""
    kpt_thr: float = 0.3
    """A predicted keypoint is drawn when its score is at least this (in [0, 1])."""
    scalar_interval: Optional[int] = None
    """Steps between loss, learning-rate and epoch points; None: ``grad_norm_interval`` (a learning rate written every
    step costs a host sync and shows nothing new)."""
    adaptive_interval: bool = False
    """Dense early, then sparse: about 8 points per doubling of the step count, capped at each interval."""
    max_log_mb: Optional[float] = None
    """Stop images and histograms once the run folder passes this many megabytes; scalars go on."""
    raise_on_nonfinite: bool = False
    """Raise ``FloatingPointError`` on a NaN or Inf loss or gradient instead of recording it in ``train/anomaly/*``."""
    async_writes: bool = True
    """Serialise and write on a background thread; False writes inline, on the training thread."""
    profile_steps: Optional[Tuple[int, int]] = None
    """``(start, stop)``: a profiler trace of those training steps (both included) into the run folder; None: no
    profiling, and no cost. ``TFCallback`` also takes Keras' ``profile_batch``."""
    backends: Any = None
    """Backends beside TensorBoard, such as ``("wandb", "mlflow")`` or ``{"wandb": {"project": ...}}``: they get what
    the event files get, at the same steps, off the training thread."""
    backend_timeout: float = 30.0
    """Seconds ``close()`` waits for the backends to catch up."""
    resume_wait: float = 60.0
    """Seconds a resume waits for the interrupted run's process to let go of the run folder before it refuses
    (``unitb.FolderBusy``): two writers never share one folder."""
    system_interval: float = 10.0
    """Seconds between samples of the machine (``system/*``: CPU, memory, disk, network, this process's GPUs),
    taken on a background thread at the current step; 0 turns them off."""
    alerts: Any = None
    """A word when the run goes wrong: ``True`` (NaN/Inf loss, divergence, a stall, a full GPU: to the console and
    the run), or a dict with a ``webhook`` URL and/or a ``command`` and the rules' settings
    (:class:`unitb.life.alerts.AlertOptions`)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("log_") or f.name in ("adaptive_interval", "raise_on_nonfinite", "async_writes"):
                if not isinstance(value, bool):
                    raise ValueError(f"{f.name} must be True or False, got {value!r}")
        for name in ("grad_norm_interval", "weight_hist_interval", "train_image_interval",
                     "val_image_interval", "max_layers_to_log", "max_train_images"):
            setattr(self, name, check_interval(name, getattr(self, name)))
        if self.scalar_interval is not None:
            self.scalar_interval = check_interval("scalar_interval", self.scalar_interval)
        self.kpt_thr = check_fraction("kpt_thr", self.kpt_thr)
        if self.max_log_mb is not None:
            if isinstance(self.max_log_mb, bool) or not isinstance(self.max_log_mb, (int, float)) \
                    or self.max_log_mb <= 0:
                raise ValueError(f"max_log_mb must be a positive number of megabytes or None, got {self.max_log_mb!r}")
        self.profile_steps = check_profile_steps(self.profile_steps)
        if isinstance(self.activation_layers, str):
            self.activation_layers = (self.activation_layers,)
        if not isinstance(self.activation_layers, (tuple, list)) or not all(
                isinstance(name, str) and name for name in self.activation_layers):
            raise ValueError(f"activation_layers must be layer names, got {self.activation_layers!r}")
        self.activation_layers = tuple(self.activation_layers)
        if self.embedding_layer is not None and (not isinstance(self.embedding_layer, str) or not self.embedding_layer):
            raise ValueError(f"embedding_layer must be a layer's name or None, got {self.embedding_layer!r}")
        self.backends = check_backends(self.backends)
        if isinstance(self.backend_timeout, bool) or not isinstance(self.backend_timeout, (int, float)) \
                or self.backend_timeout <= 0:
            raise ValueError(f"backend_timeout must be a positive number of seconds, got {self.backend_timeout!r}")
        check_non_negative("resume_wait", self.resume_wait, "a non-negative number of seconds")
        self.system_interval = check_system_interval(self.system_interval)
        self.alerts = check_alerts(self.alerts)
        adaptive = self.adaptive_interval
        self.scalar_policy: StepPolicy = make_step_policy(
            "scalar_interval", self.scalar_interval or self.grad_norm_interval, adaptive)
        self.grad_policy: StepPolicy = make_step_policy("grad_norm_interval", self.grad_norm_interval, adaptive)
        self.train_image_policy: StepPolicy = make_step_policy("train_image_interval", self.train_image_interval,
                                                               adaptive)
        self.weight_policy = EveryNEpochs(self.weight_hist_interval, "weight_hist_interval")

    @classmethod
    def from_kwargs(cls, owner: str, kwargs: Dict[str, Any]) -> "LogOptions":
        """Build from keyword arguments; an unknown key is an error that suggests the right one."""
        known = {f.name for f in fields(cls)}
        for key in kwargs:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(known))}"
                raise ValueError(f"{owner} got an unknown argument {key!r}{hint}")
        return cls(**kwargs)



# What an entry point cannot do, refused at construction with what to do instead: the one list.
_OWN_EMBEDDING = ("embedding_layer is for the mmengine hook and TFCallback; here call log_embedding(tag, features, "
                  "metadata, images) with your validation features")
UNSUPPORTED: Dict[str, Dict[str, str]] = {
    "EnhancedTensorBoardHook": {
        "spool_dir": "there is no spool_dir: the hook uploads mmengine's own folder (work_dir/<timestamp>/vis_data) "
                     "to out_dir",
        "storage_options": "the store's options are backend_args here (as in mmengine's LoggerHook), not "
                           "storage_options",
    },
    "TorchLogger": {"embedding_layer": _OWN_EMBEDDING},
    "TFLogger": {
        "activation_layers": "activation_layers is for the mmengine hook, TorchLogger and TFCallback; here "
                             "log_histogram('activations/<layer>', outputs) from your step",
        "embedding_layer": _OWN_EMBEDDING,
    },
}


def refuse_unsupported(owner: str, kwargs: Dict[str, Any]) -> None:
    """A ``ValueError`` for a keyword ``owner`` cannot serve (:data:`UNSUPPORTED`)."""
    for name, why in UNSUPPORTED.get(owner, {}).items():
        if kwargs.get(name) not in (None, (), [], "", False):
            raise ValueError(f"{owner}: {why}")


def show_options(init: Callable, *groups: type) -> None:
    """Give an entry point's ``__init__(..., **kwargs)`` the signature that ``help()`` and
    ``inspect.signature`` show: its own parameters, then every field of the option
    dataclasses ``groups`` (:class:`LogOptions`, the store's options) as keyword-only, with its
    default, less those the entry point refuses (:data:`UNSUPPORTED`). The keywords still arrive
    in ``**kwargs`` (typed by :mod:`unitb.life.keywords`) and are validated by those classes, so
    the list and the checks cannot drift apart."""
    signature = inspect.signature(init)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    owner = init.__qualname__.split(".")[0]
    names = {p.name for p in params} | set(UNSUPPORTED.get(owner, {}))
    for group in groups:
        for field_ in fields(group):
            if field_.name not in names:
                names.add(field_.name)
                params.append(inspect.Parameter(field_.name, inspect.Parameter.KEYWORD_ONLY,
                                                default=field_.default, annotation=field_.type))
    init.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
