"""The one place where unitb reaches into mmengine's internals.

mmengine offers no public way to (a) move ``TensorboardVisBackend``'s SummaryWriter to another
folder after it was opened, or (b) keep LoggerHook's scalars out of that writer while other
``add_scalars`` calls still reach it. Both are done here and nowhere else:

- :func:`repoint` sets the backend's ``_tensorboard`` (the writer) and ``_save_dir``;
- :func:`schema_only` wraps the backend's ``add_scalars``;
- :func:`redact_config_text` wraps ``TensorboardVisBackend.add_config`` (class level, once, when
  ``torch_adapter`` is imported: the Runner writes its config text while it is built, before
  any hook exists), so the config in the TEXT tab never carries credentials;
- :func:`accumulative_counts` reads an ``OptimWrapper``'s gradient-accumulation count, and
  :func:`normalization` an ``ImgDataPreprocessor``'s normalisation and channel swap (neither is
  public);
- :func:`allow_checkpoint_globals` lets torch's weights-only ``torch.load`` (the default from
  torch 2.6) read what mmengine's own checkpoints hold besides tensors: the message hub's
  ``HistoryBuffer`` objects (pickled with their statistics methods as
  ``getattr(HistoryBuffer, 'min')``…) and the numpy arrays and scalars inside them.

Checked against mmengine :data:`CHECKED_VERSIONS`. :func:`missing_internals` lists what this
module relies on and is absent from a backend; the hook warns with it, and
``tests/test_torch_hook.py`` fails loudly when an mmengine release changes them.
"""
from __future__ import annotations

import functools
import inspect
from typing import List, Optional, Tuple

from unitb.files.storage import redact_secrets

CHECKED_VERSIONS = ("0.10.7",)


def _history_buffer_method(owner, name: str):
    """What ``builtins.getattr`` may do while a checkpoint is read: fetch one of
    ``HistoryBuffer``'s statistics methods, nothing else (a general ``getattr`` would let a
    crafted checkpoint reach any attribute)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    allowed = {"min", "max", "current", "mean", *HistoryBuffer._statistics_methods}  # built-in and registered
    if owner is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(HistoryBuffer, name)
    raise ValueError(f"unitb: a checkpoint asked for getattr({owner!r}, {name!r}); only HistoryBuffer's "
                     "statistics methods are allowed")


def allow_checkpoint_globals() -> bool:
    """Allow-list, for weights-only ``torch.load``, exactly the globals an mmengine checkpoint
    holds (numpy arrays, dtypes and scalars, ``HistoryBuffer``); ``getattr`` only as
    :func:`_history_buffer_method`.
    The check stays on for everything else. False where torch has no allow-list (< 2.4,
    whose ``torch.load`` is not weights-only by default)."""
    import numpy as np
    import torch

    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:
        return False
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    reconstruct, scalar = multiarray.multiarray._reconstruct, multiarray.multiarray.scalar
    dtype_classes = [type(np.dtype(kind)) for kind in "?bBhHiIlLqQefdgFDG"]
    add([HistoryBuffer, np.ndarray, np.dtype, reconstruct, scalar, *dtype_classes,
         (_history_buffer_method, "builtins.getattr"),
         (reconstruct, f"{reconstruct.__module__}._reconstruct"),  # checkpoints from numpy 1 and 2
         (reconstruct, "numpy.core.multiarray._reconstruct"), (scalar, "numpy.core.multiarray.scalar")])
    return True


def accumulative_counts(wrapper) -> int:
    """How many iterations an ``OptimWrapper`` accumulates gradients over (1: an update each)."""
    try:
        return int(getattr(wrapper, "_accumulative_counts", 1) or 1)
    except (TypeError, ValueError):
        return 1


def normalization(preprocessor, default: bool) -> Tuple[bool, bool]:
    """(normalises, swaps BGR/RGB) of an ``ImgDataPreprocessor``; ``default`` when it does not say."""
    return (bool(getattr(preprocessor, "_enable_normalize", default)),
            bool(getattr(preprocessor, "_channel_conversion", False)))


def tensorboard_backend(runner):
    """The runner's ``TensorboardVisBackend`` (public API), or None."""
    try:
        return runner.visualizer.get_backend("TensorboardVisBackend")
    except Exception:
        return None


def missing_internals(backend) -> List[str]:
    """What :func:`repoint` and :func:`schema_only` need and ``backend`` lacks (empty when all
    is there)."""
    missing = [name for name in ("_tensorboard", "_save_dir") if not hasattr(backend, name)]
    add_scalars = getattr(backend, "add_scalars", None)
    try:
        if add_scalars is None or "file_path" not in inspect.signature(add_scalars).parameters:
            missing.append("add_scalars(..., file_path=...)")
    except (TypeError, ValueError):
        missing.append("add_scalars(..., file_path=...)")
    return missing


def missing_class_internals() -> List[str]:
    """What :func:`accumulative_counts` and :func:`normalization` read and the installed
    mmengine's classes no longer set (read from their ``__init__`` source: nothing is built)."""
    from mmengine.model import ImgDataPreprocessor
    from mmengine.optim import OptimWrapper

    missing = []
    for cls, names in ((OptimWrapper, ("_accumulative_counts",)),
                       (ImgDataPreprocessor, ("_enable_normalize", "_channel_conversion"))):
        try:
            source = inspect.getsource(cls.__init__)
        except (OSError, TypeError):
            source = ""
        missing += [f"{cls.__name__}.{name}" for name in names if f"self.{name}" not in source]
    return missing


def repoint(backend, writer, folder: str) -> None:
    """Make ``backend`` write through ``writer`` in ``folder`` (a fresh run that moved to the
    next free version of its folder): mmengine's LoggerHook scalars follow it there."""
    backend._tensorboard = writer
    backend._save_dir = folder


def writes_through(backend, writer) -> bool:
    return backend is not None and getattr(backend, "_tensorboard", None) is writer


def schema_only(backend) -> None:
    """Keep mmengine's LoggerHook scalars out of the TensorBoard writer unitb shares.

    LoggerHook is the caller that passes ``file_path`` (its ``scalars.json``) to
    ``add_scalars``; the visualizer hands the same call to every backend, so only the
    TensorBoard backend's copy is dropped here, and scalars a user adds without a file path
    still reach TensorBoard."""
    if getattr(backend, "_unitb_schema_only", False):
        return
    original = backend.add_scalars

    def add_scalars(scalar_dict, step=0, file_path=None, **kwargs):
        if file_path is not None:
            return None
        return original(scalar_dict, step=step, file_path=file_path, **kwargs)

    backend.add_scalars = add_scalars
    backend._unitb_schema_only = True


def keep_schema_only(backend, warn) -> None:
    """:func:`schema_only`, or one warning naming what this mmengine lacks for it."""
    missing = missing_internals(backend)
    if missing:
        import mmengine

        warn(f"EnhancedTensorBoardHook: mmengine's TensorboardVisBackend has no {', '.join(missing)}"
             f"{version_note(mmengine.__version__)}; mmengine's LoggerHook scalars stay in TensorBoard beside unitb's")
        return
    schema_only(backend)


def version_note(version: Optional[str]) -> str:
    """A hint for a warning when mmengine is a version this module was not checked against."""
    if version is None or version in CHECKED_VERSIONS:
        return ""
    return f" (mmengine {version}; unitb was checked against {', '.join(CHECKED_VERSIONS)})"


class _RedactedConfig:
    """What ``add_config`` reads of a Config (``pretty_text``), with credentials masked."""

    def __init__(self, config) -> None:
        self._config = config

    @property
    def pretty_text(self) -> str:
        return redact_secrets(self._config.pretty_text)

    def __getattr__(self, name):
        return getattr(self._config, name)


def redact_config_text() -> None:
    """Mask credential values (``key=``, ``secret=``, ``token=`` …, as ``backend_args`` carry
    them) in the config text every ``TensorboardVisBackend`` writes. Idempotent."""
    try:
        from mmengine.visualization import TensorboardVisBackend
    except ImportError:  # pragma: no cover - mmengine is optional
        return
    original = TensorboardVisBackend.add_config
    if getattr(original, "_unitb_redacts", False):
        return

    @functools.wraps(original)
    def add_config(self, config, **kwargs):
        return original(self, _RedactedConfig(config), **kwargs)

    add_config._unitb_redacts = True  # type: ignore[attr-defined]
    TensorboardVisBackend.add_config = add_config

