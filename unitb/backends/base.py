"""What a backend is: one class that takes a run's records a step at a time, registered by name.

A destination beside TensorBoard (W&B, MLflow, or one of your own) is a subclass of
:class:`Backend` with a ``name`` and the four calls below, registered with
:func:`register_backend` — the way mmengine registers its visualization backends. It never sees
the training loop: the forwarder (:mod:`unitb.backends.forwarder`) follows the run folder's event
files and hands it each step's records, so it gets the same tags and steps as TensorBoard.

    @register_backend
    class Printer(Backend):
        name = "printer"
        def open(self, state, start_step, run_name):
            return -1                       # the last step this destination holds already
        def send(self, steps):
            for step, points in steps:      # consecutive steps, in order
                print(step, points)

A package that ships a backend names its class under the ``unitb.backends`` entry-point group
(``printer = "my_package.printer:Printer"``), so ``backends=("printer",)`` and
``unitb push RUN --to printer`` find it without an import.
"""
from __future__ import annotations

import contextlib
import re
from importlib import util as import_util
from typing import Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Set, Tuple, Type, TypeVar

Point = Tuple[str, str, object]  # (tag, kind, decoded value) of one record at a step
StepPoints = Tuple[int, List[Point]]

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_REGISTERED: Dict[str, Type["Backend"]] = {}

B = TypeVar("B", bound=Type["Backend"])


class Backend:
    """One destination of a run's records (see the module's example).

    ``options``: the keywords a user gave it (``backends={"name": {...}}``), only those in
    ``keywords``. ``warn`` says something once to the user; a record the destination refuses is
    skipped with one warning per kind (:meth:`skipped_on_error`), while an exception out of
    :meth:`send` leaves this backend out for the rest of the run (TensorBoard goes on)."""

    name: ClassVar[str] = ""
    keywords: ClassVar[Tuple[str, ...]] = ()  # the options it takes
    package: ClassVar[Optional[str]] = None  # the module it needs installed, if any
    extra: ClassVar[Optional[str]] = None  # unitb's pip extra that installs ``package``
    in_order: ClassVar[bool] = False  # takes steps in increasing order only; else late records too
    # The run's first and last event times (seconds since the epoch), set by the forwarder before
    # open() and close() where it knows them (a run pushed after it ended), so the destination can
    # show the training's own start and end rather than the forwarding's; None: now.
    started_at: Optional[float] = None
    ended_at: Optional[float] = None

    def __init__(self, options: Mapping[str, object], warn: Callable[[str], None]):
        self.options: Dict[str, object] = dict(options)
        self._warn = warn
        self._said: Set[str] = set()

    def open(self, state: Dict[str, object], start_step: int, run_name: str) -> int:
        """Open the destination's run. ``state``: what :meth:`state` returned for an earlier
        process that wrote into this run folder (empty for a new run); ``start_step``: a resume's
        step (0 for a fresh run). Returns the last step the destination already holds (-1: none):
        the steps after it are sent."""
        raise NotImplementedError

    def send(self, steps: List[StepPoints]) -> None:
        """Take consecutive steps, in order, each with its ``(tag, kind, value)`` records."""
        raise NotImplementedError

    def state(self) -> Dict[str, object]:
        """What a later process needs to go on in the same run (its id): kept as JSON in the run
        folder beside the last step sent."""
        return {}

    def close(self) -> None:
        """Finish the destination's run."""

    # ------------------------------------------------------------------ settings, not a run
    @classmethod
    def in_sweep(cls, options: Mapping[str, object], sweep: str) -> Dict[str, object]:
        """The options of a sweep's trial (``sweep``: the sweep's name), so a destination can
        group a sweep's trials its own way."""
        return dict(options)

    @classmethod
    def local_options(cls, folder: str, project: str, given: Mapping[str, object]) -> Dict[str, object]:
        """Options that keep this destination on this machine, under ``folder``, where it can
        (what the demo sends to), grouped under ``project``; ``given`` over them."""
        return dict(given)

    @classmethod
    def where_to_look(cls, options: Mapping[str, object], command: Callable[[str, str], str]) -> Optional[str]:
        """One line telling a person where runs sent with ``options`` are seen. ``command(tool,
        module)`` spells how this environment starts a console script."""
        return None

    # ------------------------------------------------------------------ helpers for subclasses
    @contextlib.contextmanager
    def skipped_on_error(self, tag: str, kind: str) -> Iterator[None]:
        """Skip one record the destination refuses, with one warning per kind of record."""
        try:
            yield
        except Exception as exc:
            if kind not in self._said:
                self._said.add(kind)
                self._warn(f"unitb: {self.name} did not take the {kind} {tag!r} ({type(exc).__name__}: {exc}); "
                           f"such records are skipped there, the rest is sent")


def installed(package: str) -> bool:
    """Whether ``package`` can be imported (a module blocked in ``sys.modules`` counts as missing)."""
    try:
        return import_util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def register_backend(cls: B) -> B:
    """Make ``cls`` a backend by its ``name`` (a class decorator). A second class under a name
    already taken is a ValueError; registering the same class again (a module run twice) is not."""
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"register_backend takes a subclass of unitb.backends.Backend, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not _NAME.match(name) or name == "tensorboard":
        raise ValueError(f"{cls.__qualname__}.name must be lowercase letters, digits, '_' or '-' and not "
                         f"'tensorboard', got {name!r}")
    earlier = _REGISTERED.get(name)
    if earlier is not None and (earlier.__module__, earlier.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"backend {name!r} is registered already, by {earlier.__module__}.{earlier.__qualname__}")
    _REGISTERED[name] = cls
    return cls


def registered() -> Dict[str, Type[Backend]]:
    """The backends registered so far, in the order they were (see :mod:`unitb.backends.registry`
    for all of them, built-in and installed)."""
    return dict(_REGISTERED)
