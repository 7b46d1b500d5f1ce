"""One run's life, lived the same way by every entry point.

The mmengine hook, ``TorchLogger``, ``TFCallback`` and ``TFLogger`` differ in when their
framework tells them things; what they do then is here, once: the options (refusing what the
entry point cannot do), the run folder opened with its writer, the header at step 0, the speed
meter, the profiler window, the step the user's own values land at, and the close order
(profiler, then writer, then the folder's uploads and backends). An entry point keeps only the
translation of its framework's events, and the measuring only its framework can do.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Tuple

from unitb.backends import registry
from unitb.folder.claim import FolderBusy
from unitb.log import sweep_trial
from unitb.log.opening import open_folder
from unitb.log.options import LogOptions, refuse_unsupported
from unitb.log.profiling import StepProfiler
from unitb.log.speed import SpeedMeter
from unitb.notices import default_info, default_warn
from unitb.store.remote_folder import StoreOptions, open_run_folder
from unitb.write.hparams import merged
from unitb.write.writer import RunLogger, Sink

# Inside a sweep's trial the writer flushes every second, so the agent following the run judges
# the trial on points at most a second old (outside a sweep: every 5 s).
TRIAL_FLUSH_SECS = 1.0

MakeProfiler = Callable[[Tuple[int, int], str, Callable[[str, str, str], None]], StepProfiler]


class RunLife:
    """The options and the open run of one entry point (``owner`` names it in messages).

    ``kwargs`` are the entry point's keyword arguments: the store's options and
    :class:`~unitb.log.options.LogOptions` are taken from them, and an option ``owner`` cannot
    serve is refused with a ``ValueError`` (:data:`unitb.log.options.UNSUPPORTED`).
    ``device_memory``: the framework's peak accelerator memory in MB since the last call, for
    ``train/memory/device_mb``."""

    def __init__(self, owner: str, kwargs: Dict[str, object],
                 device_memory: Optional[Callable[[], Optional[float]]] = None,
                 warn: Callable[[str], None] = default_warn, info: Callable[[str], None] = default_info,
                 storage_options: Optional[Mapping[str, object]] = None):
        refuse_unsupported(owner, kwargs)
        if storage_options is not None:  # the entry point's own name for them (the hook's backend_args)
            kwargs["storage_options"] = storage_options
        self.owner = owner
        self.store = StoreOptions.pop_from(kwargs)
        self.options = LogOptions.from_kwargs(owner, kwargs)
        self.warn, self.info = warn, info
        self.speed = SpeedMeter(device_memory)
        self.run: Optional[RunLogger] = None
        self.run_dir: Optional[str] = None  # the folder (or URL) the run went to
        self.step = 0  # the last training step: where log_scalar & co. land
        self.profiler: Optional[StepProfiler] = None
        self.trial = sweep_trial.current()  # inside a sweep's trial: its parameters and run folder

    # ------------------------------------------------------------------ a sweep's trial
    def logdir(self, given: str) -> str:
        """Where the run goes: the trial's folder inside a sweep, else ``given``."""
        return self.trial.logdir if self.trial is not None and self.trial.logdir else given

    def hparams(self, values: Optional[Mapping[str, object]]) -> Dict[str, object]:
        """The run's hparams, with a trial's parameters, sweep and number over them."""
        return merged(values, self.trial.hparams() if self.trial is not None else None)

    def backends(self) -> Optional[Mapping[str, Mapping[str, object]]]:
        """The backends' settings; inside a sweep's trial each backend groups the sweep's
        trials its own way (:meth:`unitb.backends.base.Backend.in_sweep`)."""
        chosen = self.options.backends
        if self.trial is None or not isinstance(chosen, dict):
            return chosen
        return registry.in_sweep(chosen, self.trial.sweep)

    # ------------------------------------------------------------------ opening
    def open(self, sink: Sink, *, start_step: int = 0, url: Optional[str] = None, mirror=None,
             run_name: Optional[str] = None, forwarder=None) -> RunLogger:
        """Start writing into ``sink``'s folder (a URL run: ``url``, uploaded by ``mirror``); the
        backends' ``forwarder`` of an earlier writer into the same folder is kept."""
        folder = open_folder(sink.logdir, url=url, mirror=mirror, backends=self.backends(),
                             start_step=start_step, warn=self.warn, backend_timeout=self.options.backend_timeout,
                             run_name=run_name, forwarder=forwarder)
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
        return self.run

    def open_in(self, logdir: str, start_step: Optional[int], make_sink: Callable[[str], Sink],
                    forwarder=None) -> RunLogger:
        """Pick the folder (a fresh run never writes over another; a resume claims its folder and
        sets aside what the interrupted run wrote after ``start_step``), then :meth:`open`.
        Raises :class:`~unitb.folder.claim.FolderBusy` when a live writer holds it."""
        where = open_run_folder(logdir, start_step, self.store, self.warn, self.info, self.owner,
                                self.options.resume_wait)
        return self.open(make_sink(where.local), start_step=start_step or 0, url=where.url, mirror=where.mirror,
                         forwarder=forwarder)

    def refused(self, exc: FolderBusy, scope: str = "run") -> None:
        """A resume a live writer refused, inside training: said once, and this ``scope`` (the run,
        or a Keras fit) logs nothing."""
        self.warn(f"{exc}; logging is off for this {scope}")

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

    # ------------------------------------------------------------------ closing
    def end_profiler(self) -> None:
        """A window still open at the end of training writes what it traced."""
        if self.profiler is not None:
            self.profiler.close()
            self.profiler = None

    def close_writer(self, wait_for_upload: bool = True) -> None:
        """The writer, then the folder's last upload and the backends (``wait_for_upload=False``:
        those two finish in the background; a Keras fit's end, with another fit to come)."""
        if self.run is not None:
            self.run.close(wait_for_upload=wait_for_upload)
            self.run = None

    def close(self, wait_for_upload: bool = True) -> None:
        """The profiler, then :meth:`close_writer`."""
        self.end_profiler()
        self.close_writer(wait_for_upload)
