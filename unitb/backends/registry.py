"""Every backend by name: the two built in, those registered in this process, and those that
installed packages name under the ``unitb.backends`` entry-point group. ``backends=``, the
``unitb push --to`` choices, the missing-package message and its pip hint all come from here."""
from __future__ import annotations

from importlib import metadata
from typing import Callable, Dict, Iterable, List, Mapping, Tuple, Type

from unitb.backends import base
from unitb.backends.base import Backend, installed
# The built-in backends register themselves on import, W&B first (the order names() lists them).
from unitb.backends import wandb_backend  # noqa: F401  # isort: skip
from unitb.backends import mlflow_backend  # noqa: F401  # isort: skip
from unitb.notices import default_warn

ENTRY_POINT_GROUP = "unitb.backends"
TENSORBOARD = "tensorboard"  # always on: a name a user may list, never a Backend

_plugins_loaded = False


def _load_installed() -> None:
    """Import the backends installed packages name (once): a package that fails to load is said
    once and left out, so a broken plugin never stops a run that does not use it."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            base.register_backend(entry.load())  # a class registered on import already is taken again
        except Exception as exc:
            default_warn(f"unitb: the backend {entry.name!r} ({entry.value}) could not be loaded "
                         f"({type(exc).__name__}: {exc}); it is left out")


def backends() -> Dict[str, Type[Backend]]:
    """Every backend, by name."""
    _load_installed()
    return base.registered()


def names() -> Tuple[str, ...]:
    """What ``backends=`` takes: TensorBoard, then every backend."""
    return (TENSORBOARD, *backends())


def install_hint(classes: Iterable[Type[Backend]]) -> str:
    """One pip command that installs what ``classes`` need: unitb's extras where they have one."""
    classes = list(classes)
    extras = [cls.extra for cls in classes if cls.extra]
    others = [cls.package for cls in classes if not cls.extra and cls.package]
    words = ([f"'unitb[{','.join(extras)}]'"] if extras else []) + [str(package) for package in others]
    return "pip install " + " ".join(words)


def check_backends(value: object) -> Dict[str, Dict[str, object]]:
    """``backends=`` as ``{name: options}`` for the extra backends (TensorBoard is always on).

    Takes a sequence of names (``("wandb", "mlflow")``) or a mapping of name to its options
    (``{"wandb": {"project": "pose"}, "mlflow": {"tracking_uri": "http://…"}}``). An unknown
    name or keyword, or a backend whose package is not installed, is a ValueError now rather
    than a silent gap later."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = (value,)
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, Iterable):
        items = [(name, {}) for name in value]
    else:
        raise ValueError(f"backends must be names or a mapping of name to options, got {value!r}")
    known = backends()
    out: Dict[str, Dict[str, object]] = {}
    missing: List[str] = []
    for name, options in items:
        if name == TENSORBOARD:
            continue
        if name not in known:
            raise ValueError(f"unknown backend {name!r}; choose from {', '.join(names())}")
        cls = known[name]
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.keywords))
        if unknown:
            raise ValueError(f"backends[{name!r}] got unknown option(s) {', '.join(unknown)}; "
                             f"valid: {', '.join(cls.keywords)}")
        if cls.package and not installed(cls.package):
            missing.append(name)
        out[name] = options
    if missing:  # every missing package in one message, so one pip command fixes them all
        packages = ", ".join(str(known[name].package) for name in missing)
        raise ValueError(f"backends {', '.join(map(repr, missing))} need packages that are not installed "
                         f"({packages}): {install_hint(known[name] for name in missing)}")
    return out


def make_backend(name: str, options: Mapping[str, object], warn: Callable[[str], None]) -> Backend:
    """A new backend ``name`` with its ``options`` (checked by :func:`check_backends`)."""
    return backends()[name](options, warn)


def in_sweep(settings: Mapping[str, Mapping[str, object]], sweep: str) -> Dict[str, Dict[str, object]]:
    """A sweep's trial's backend settings: each backend groups the sweep's trials its own way."""
    known = backends()
    return {name: known[name].in_sweep(options or {}, sweep) if name in known else dict(options or {})
            for name, options in settings.items()}
