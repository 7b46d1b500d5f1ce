"""One run's life, lived the same way by every entry point.

The mmengine hook, ``TorchLogger``, ``TFCallback`` and ``TFLogger`` differ in when their
framework tells them things; what they do then is here, once: the options (refusing what the
entry point cannot do), the logdir and start-step checks, who writes (the chief), the run folder
opened with its writer, the hparams with the framework's name, a training step's scalars (the
due check, the speed, the write), the speed meter, the profiler window, the step the user's own
values land at, and one close order (profiler, the entry point's own parts, writer, then the
folder's uploads and backends, also those kept from one Keras fit to the next). An entry point
keeps only the translation of its framework's events, and the measuring only its framework can do.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from unitb.backends import registry
from unitb.files import storage
from unitb.folder.claim import FolderBusy
from unitb.life import sweep_trial
from unitb.life.opening import OpenedFolder, open_folder
from unitb.life.options import LogOptions, refuse_unsupported
from unitb.life.profiling import StepProfiler
from unitb.life.speed import SpeedMeter
from unitb.life.alerts import AlertMonitor
from unitb.life.node_figures import NodeFigures, NodeLink, NodeReporter
from unitb.life.system_metrics import MachineReader, SystemSampler
from unitb.notices import default_info, default_warn
from unitb.store.run_location import StoreOptions, choose_run_location
from unitb.write.hparams import merged
from unitb.life.train_step import write_train_step
from unitb.write.writer import RunLogger, Sink

# Inside a sweep's trial the writer flushes every second, so the agent following the run judges
# the trial on points at most a second old (outside a sweep: every 5 s).
TRIAL_FLUSH_SECS = 1.0

MakeProfiler = Callable[[Tuple[int, int], str, Callable[[str, str, str], None]], StepProfiler]


def check_start_step(value: object, allow_none: bool = False) -> Optional[int]:
    """A resume's step: the optimizer steps already taken (0: a fresh run; None, where allowed:
    whatever a checkpoint manager restores)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"start_step must be a non-negative int{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_logdir(logdir: object, store: Optional[StoreOptions] = None, owner: str = "unitb",
                 create: bool = True) -> str:
    """Create ``logdir`` now (``create``), so an unusable path fails at construction, naming the
    path. A URL is checked for a file system that serves it (nothing is sent to the store yet)."""
    path = storage.check_location(logdir, (store or StoreOptions()).storage_options, owner)
    if storage.is_url(path) or not create:
        return path
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create logdir {path!r}: {exc}") from exc
    if not os.access(path, os.W_OK):
        raise ValueError(f"logdir {path!r} is not writable")
    return path


class RunLife:
    """The options and the open run of one entry point (``owner`` names it in messages;
    ``framework`` is the run's ``framework`` hparam).

    ``kwargs`` are the entry point's keyword arguments: the store's options and
    :class:`~unitb.life.options.LogOptions` are taken from them, and an option ``owner`` cannot
    serve is refused with a ``ValueError`` (:data:`unitb.life.options.UNSUPPORTED`).
    ``device_memory``: the framework's peak accelerator memory in MB since the last call, for
    ``train/memory/device_mb``. ``is_chief``: whether this process is the one that writes (rank 0,
    the chief worker), asked when the entry point starts. ``node_link``: the exchange between the
    first processes of the nodes of a job over several machines (None elsewhere), for each node's
    ``system/*`` figures."""

    def __init__(self, owner: str, framework: str, keywords: Mapping[str, Any],
                 device_memory: Optional[Callable[[], Optional[float]]] = None,
                 warn: Callable[[str], None] = default_warn, info: Callable[[str], None] = default_info,
                 storage_options: Optional[Mapping[str, object]] = None,
                 is_chief: Callable[[], bool] = lambda: True,
                 node_link: Callable[[], Optional[NodeLink]] = lambda: None):
        kwargs: Dict[str, Any] = dict(keywords)  # the entry point's own stay as they were given
        refuse_unsupported(owner, kwargs)
        if storage_options is not None:  # the entry point's own name for them (the hook's backend_args)
            kwargs["storage_options"] = storage_options
        self.owner, self.framework = owner, framework
        self.store = StoreOptions.pop_from(kwargs)
        self.options = LogOptions.from_kwargs(owner, kwargs)
        self.warn, self.info = warn, info
        self.speed = SpeedMeter(device_memory)
        self.run: Optional[RunLogger] = None
        self.run_dir: Optional[str] = None  # the folder (or URL) the run went to
        self.step = 0  # the last training step: where log_scalar & co. land
        self.profiler: Optional[StepProfiler] = None
        self.trial = sweep_trial.current()  # inside a sweep's trial: its parameters and run folder
        self._is_chief = is_chief
        self._node_link = node_link
        self._own_parts: List[Callable[[], None]] = []  # the entry point's, closed before the writer
        self._last: List[Callable[[], None]] = []  # closed after the writer and the uploads
        self._folder: Optional[OpenedFolder] = None
        self._kept_forwarder = None  # a Keras fit's backends and uploads, going on until the next fit
        self._kept_mirror = None
        self._sampler: Optional[SystemSampler] = None  # system/*, while a writer is open
        self._monitor: Optional[AlertMonitor] = None  # alerts=, while a writer is open
        self._reporter: Optional[NodeReporter] = None  # a non-chief node's figures, for the chief
        self._node_settled = False  # whether report_node has its answer

    def chief(self) -> bool:
        """Whether this process writes: only the chief (rank 0) does, in distributed runs."""
        return bool(self._is_chief())

    # ------------------------------------------------------------------ a sweep's trial
    def logdir(self, given: str, create: bool = True) -> str:
        """Where the run goes: the trial's folder inside a sweep, else ``given``, checked (and
        made, with ``create``) now: :func:`check_logdir`."""
        chosen = self.trial.logdir if self.trial is not None and self.trial.logdir else given
        return check_logdir(chosen, self.store, self.owner, create=create)

    def hparams(self, *layers: Optional[Mapping[str, object]]) -> Dict[str, object]:
        """The run's hparams: the framework's name, then ``layers`` (later ones win), then a
        trial's parameters, sweep and number over them."""
        return merged({"framework": self.framework}, *layers, self.trial.hparams() if self.trial is not None else None)

    def backends(self) -> Optional[Mapping[str, Mapping[str, object]]]:
        """The backends' settings; inside a sweep's trial each backend groups the sweep's
        trials its own way (:meth:`unitb.backends.base.Backend.in_sweep`)."""
        chosen = self.options.backends
        if self.trial is None or not isinstance(chosen, dict):
            return chosen
        return registry.in_sweep(chosen, self.trial.sweep)

    # ------------------------------------------------------------------ opening
    def open(self, sink: Sink, *, start_step: int = 0, url: Optional[str] = None, mirror=None,
             run_name: Optional[str] = None) -> RunLogger:
        """Start writing into ``sink``'s folder (a URL run: ``url``, uploaded by ``mirror``); the
        backends' forwarder an earlier writer into the same folder left going (a Keras fit's) goes on."""
        folder = open_folder(sink.logdir, url=url, mirror=mirror, backends=self.backends(),
                             start_step=start_step, warn=self.warn, backend_timeout=self.options.backend_timeout,
                             run_name=run_name, forwarder=self._kept_forwarder)
        if folder.forwarder is self._kept_forwarder:
            self._kept_forwarder = None  # the new writer's folder goes on with it, and closes it
        self._folder = folder
        self.run = RunLogger(sink, warn=self.warn, max_log_mb=self.options.max_log_mb,
                             raise_on_nonfinite=self.options.raise_on_nonfinite,
                             async_writes=self.options.async_writes, folder=folder,
                             **({"flush_secs": TRIAL_FLUSH_SECS} if self.trial is not None else {}))
        self.run_dir = self.run.run_dir
        if self.trial is not None:
            self.run.on_nonfinite = self.trial.note_nonfinite  # the agent fails a trial whose metric did
            try:
                self.trial.note_run(sink.logdir)  # a URL run: its local spool
            except OSError as exc:
                self.warn(f"unitb: could not tell the sweep's agent where this trial's run is ({exc})")
        self.step = start_step
        self.speed.start(start_step)
        self._start_alerts(sink.logdir)
        self._start_sampler()
        return self.run

    def _start_alerts(self, folder: str) -> None:
        """The rules of ``alerts=``, told of the run's values by its writer."""
        if self.options.alerts is None or self.run is None:
            return
        monitor = AlertMonitor(self.options.alerts, folder, lambda: (self.run, self.step), self.warn)
        self._monitor = monitor
        trial_note = self.run.on_nonfinite

        def nonfinite(tag: str, value: float, step: int) -> None:
            if trial_note is not None:
                trial_note(tag, value, step)
            monitor.on_nonfinite(tag, value, step)

        self.run.on_nonfinite = nonfinite
        self.run.on_scalar = monitor.on_scalar

    def _start_sampler(self) -> None:
        """``system/*`` every ``system_interval`` seconds, from a thread of its own."""
        if self.options.system_interval > 0 and self._sampler is None:
            link = self._node_link()
            self._sampler = SystemSampler(self.options.system_interval, lambda: (self.run, self.step),
                                          self.info, self.warn,
                                          self._monitor.on_system if self._monitor is not None else None,
                                          NodeFigures(link, self.warn) if link is not None and link.nodes > 1 else None)
            self._sampler.start(self.step)

    def report_node(self) -> None:
        """On a process that does not write: the first process of another node than the chief's
        samples its machine for the chief's run (:mod:`unitb.life.node_figures`). Cheap to call
        at every step: once the answer is known it is not asked again; only a link that is not
        up yet (a strategy made after the logger) is asked for again."""
        if self._node_settled:
            return
        if self.options.system_interval <= 0 or self.chief():
            self._node_settled = True
            return
        link = self._node_link()
        if link is None:
            return
        self._node_settled = True
        if link.nodes < 2 or link.node == 0:
            return
        machine = MachineReader(self.info, self.warn)
        self._reporter = NodeReporter(self.options.system_interval, link, machine.read, self.info, machine.close)
        self._reporter.start()

    def open_in(self, logdir: str, start_step: Optional[int], make_sink: Callable[[str], Sink]) -> RunLogger:
        """Pick the folder (a fresh run never writes over another; a resume claims its folder and
        sets aside what the interrupted run wrote after ``start_step``), then :meth:`open`.
        Raises :class:`~unitb.folder.claim.FolderBusy` when a live writer holds it."""
        where = choose_run_location(logdir, start_step, self.store, self.warn, self.info, self.owner,
                                self.options.resume_wait)
        return self.open(make_sink(where.local), start_step=start_step or 0, url=where.url, mirror=where.mirror)

    def open_in_training(self, logdir: str, start_step: Optional[int], make_sink: Callable[[str], Sink],
                         scope: str = "run") -> Optional[RunLogger]:
        """:meth:`open_in` once training runs: a folder a live writer holds (a resume refused), or
        one that cannot be opened, is one warning, and this ``scope`` (the run, or a Keras fit)
        logs nothing; training goes on."""
        try:
            return self.open_in(logdir, start_step, make_sink)
        except FolderBusy as exc:
            self.warn(f"{exc}; logging is off for this {scope}")
        except Exception as exc:
            self.warn(f"{self.owner}: could not open {logdir} ({exc}); logging is off")
        self.close_writer()
        return None

    def start_profiler(self, make: MakeProfiler, folder: str, at_step: Optional[int] = None) -> None:
        """The ``profile_steps`` window, traced into ``folder``; ``at_step``: the step training
        stands at (a window that starts with the next one starts now)."""
        if self.options.profile_steps and self.run is not None:
            self.profiler = make(self.options.profile_steps, folder, self.run.warn_once)
            if at_step is not None:
                self.profiler.after_step(at_step)

    # ------------------------------------------------------------------ steps
    def before_step(self, step: int) -> None:
        if self.profiler is not None:
            self.profiler.before_step(step)

    def after_step(self, step: int) -> None:
        """Step ``step`` (counted from 1) is done: the user's own values land there now."""
        self.step = int(step)
        if self.profiler is not None:
            self.profiler.after_step(self.step)

    def reached(self, step: int) -> None:
        """Step ``step`` ran inside a compiled graph (told from the host as it runs): own values
        and the closing points land there; the profiler is driven by the eager steps only."""
        self.step = int(step)

    def profiling(self) -> bool:
        """Whether a ``profile_steps`` window is still to come or open."""
        return self.profiler is not None

    def before_block(self, done: int, first: int, last: int) -> bool:
        """Steps up to ``done`` are done and ``first..last`` run next as one block (a Keras
        ``steps_per_execution``): whether the profiler traces them."""
        self.after_step(done)
        if self.profiler is None:
            return False
        self.profiler.before_block(first, last)
        return self.profiler.window.active

    def step_due(self, step: int) -> bool:
        """Whether step ``step``'s scalars are due (``scalar_interval``)."""
        return self.options.scalar_policy.should_log(step)

    def write_step(self, step: int, log_vars: Optional[Mapping[str, object]] = None, *,
                   speed_at: Optional[int] = None, samples: Optional[int] = None, **values) -> None:
        """Step ``step``'s scalars (:func:`~unitb.life.train_step.write_train_step`: ``losses``,
        ``metrics``, ``learning_rates``, ``epoch``, ``loss_scale``), with the speed over the steps
        since the last point, measured up to ``speed_at`` (``step`` unless a point is written
        after its block ran on), over ``samples`` counted there (else those added)."""
        if self.run is None:
            return
        speed = None
        if self.options.log_speed:
            at = step if speed_at is None else speed_at
            speed = self.speed.point(at) if samples is None else self.speed.point(at, samples=samples)
        write_train_step(self.run, self.options, step, log_vars, speed=speed, **values)

    # ------------------------------------------------------------------ closing
    def close_with(self, close: Callable[[], None], after_uploads: bool = False) -> None:
        """Close one of the entry point's own parts with the run: before the writer (its last
        records still land), or ``after_uploads`` (another folder's uploads, such as mmengine's
        ``out_dir``). Each is called once."""
        (self._last if after_uploads else self._own_parts).append(close)

    def stop_tracing(self) -> None:
        """A window still open writes what it traced now; one not reached yet stays for later
        steps (a Keras fit's end, with another fit to come: one window over all fits)."""
        if self.profiler is not None:
            self.profiler.close()

    def end_profiler(self) -> None:
        """A window still open at the end of training writes what it traced."""
        self.stop_tracing()
        self.profiler = None

    def end_training(self) -> None:
        """Training is over: the profiler, then the entry point's own parts (probes, hooks)."""
        self.end_profiler()
        self._last_points()
        parts, self._own_parts = self._own_parts, []
        for close in parts:
            close()

    def _last_points(self) -> None:
        """The records of the step training ended at, while the writer is still open (mmengine
        closes its writer before ``after_run``): the machine's last sample, and the model
        statistics again (a line, not a point)."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self._reporter is not None:
            self._reporter.stop()
            self._reporter = None
        if self.run is not None and self.step > 0:
            self.run.model_stats_at(self.step)

    def close_writer(self, wait_for_upload: bool = True) -> None:
        """The writer, then the folder's last upload and the backends. ``wait_for_upload=False``
        (a Keras fit's end, with another fit to come): those two go on in the background, kept
        here until the next writer into the folder or :meth:`close`."""
        if self.run is not None:
            self._last_points()
            if self._monitor is not None:
                self._monitor.close()
                self._monitor = None
            if not wait_for_upload and self._folder is not None:
                self._kept_forwarder, self._kept_mirror = self._folder.forwarder, self._folder.mirror
            self.run.close(wait_for_upload=wait_for_upload)
            self.run = None

    def close(self) -> None:
        """The one close order: :meth:`end_training`, the writer, the backends and the last
        upload (also those a Keras fit left going), then what closes after them."""
        self.end_training()
        self.close_writer()
        if self._kept_forwarder is not None:
            self._kept_forwarder.close()  # before the last upload, which carries its state
            self._kept_forwarder = None
        if self._kept_mirror is not None:
            self._kept_mirror.close()
            self._kept_mirror = None
        last, self._last = self._last, []
        for close in last:
            close()


class LivesARun:
    """What every entry point shows of its run (its :class:`RunLife` is ``life``)."""

    life: RunLife

    @property
    def run(self) -> Optional[RunLogger]:
        """The run's writer while it is open."""
        return self.life.run

    @property
    def run_dir(self) -> Optional[str]:
        """The folder (or URL) the run went to: ``logdir``, or its next free version."""
        return self.life.run_dir
