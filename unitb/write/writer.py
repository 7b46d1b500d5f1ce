"""The one place where measured values become events.

Adapters measure (losses, learning rates, gradient norms, weights, images) and call a
:class:`RunLogger`; it names every tag through :mod:`unitb.schema`, drops non-finite
values into ``train/anomaly/*`` records, skips what is not a number, enforces the disk
quota for heavy summaries and turns every writer failure into one warning, so logging can
never take training down. The actual bytes go to a :class:`Sink` (``SummaryWriter`` or
``tf.summary``), which is all an adapter has to provide.
"""
from __future__ import annotations

import errno
import functools
import math
import numbers
import os
import time
from typing import Callable, Dict, List, Mapping, Optional, Protocol, Set, Tuple

import numpy as np

from unitb import schema
from unitb.write import protos
from unitb.files import storage
from unitb.write.background import BackgroundWriter
from unitb.notices import default_warn


class Sink(Protocol):
    """What an adapter's writer must offer. Values arrive as host numbers/arrays."""

    logdir: str

    def write_scalar(self, tag: str, value: float, step: int) -> None: ...
    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None: ...
    def write_image(self, tag: str, image: np.ndarray, step: int) -> None: ...
    def write_summary(self, summary, step: int) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class OpenedFolderLike(Protocol):
    """What the writer tells the folder it writes into (:class:`unitb.life.opening.OpenedFolder`):
    the writer flushed, closed, or has heavy records to queue."""

    @property
    def run_dir(self) -> str: ...

    def behind(self) -> Optional[str]: ...
    def flushed(self) -> None: ...
    def sync_soon(self) -> None: ...
    def close(self, wait_for_upload: bool, warn: Callable[[str], None]) -> None: ...


def as_number(value: object) -> Optional[float]:
    """A Python float for numbers and one-element arrays/tensors; None for anything else."""
    if isinstance(value, (bool, numbers.Number)):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        return None
    try:
        detach = getattr(value, "detach", None)  # a torch tensor: off the graph, then to the host
        if callable(detach):
            value = detach()
            to_host = getattr(value, "cpu", None)
            value = to_host() if callable(to_host) else value
        array = np.asarray(value)
    except Exception:
        return None
    if array.size == 1 and (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        return float(array.reshape(-1)[0])
    return None


# Errors that a record's own content causes (a name too long for the file system, a value of
# the wrong type or shape); anything else — a full disk, an I/O error, a vanished folder, a
# writer TensorFlow reports broken — is the writer's, and is repaired by a new event file.
_VALUE_ERRNOS = {errno.ENAMETOOLONG, errno.EINVAL, errno.EISDIR, errno.ENOTDIR, errno.EEXIST}


def value_problem(exc: BaseException) -> bool:
    """Whether ``exc`` is the record's problem rather than the writer's (see above)."""
    if isinstance(exc, OSError):
        return exc.errno in _VALUE_ERRNOS
    return isinstance(exc, (ValueError, TypeError, KeyError, IndexError, UnicodeError, OverflowError))


def _short(exc: BaseException, limit: int = 300) -> str:
    """The error's text, cut to ``limit`` characters (a 2,000-character tag is not repeated)."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def undefined_metric(name: object, value: object) -> bool:
    """COCO's evaluation reports -1 for a metric it could not measure: "not defined", not a point."""
    return str(name).lower().startswith("coco/") and as_number(value) == -1.0


def grad_norm_scalars(global_norm: object, layers: Optional[Mapping[str, object]] = None,
                      pre_clip: object = None) -> List[Tuple[str, object]]:
    """The gradient norms' tags, in the order they are written (eagerly or in a graph)."""
    out: List[Tuple[str, object]] = [(schema.GRAD_NORM_GLOBAL, global_norm)]
    if pre_clip is not None:
        out.append((schema.GRAD_NORM_PRE_CLIP, pre_clip))
    out += [(schema.grad_norm_layer(layer), value) for layer, value in (layers or {}).items()]
    return out


def directory_size_mb(path: str) -> float:
    total = 0
    for current, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(current, name))
            except OSError:
                pass
    return total / (1024 * 1024)


class RunLogger:
    """Names, guards and forwards records for one run. All methods swallow failures."""

    QUOTA_CHECK_EVERY = 20  # heavy writes between directory-size checks

    def __init__(self, sink: Sink, *, warn: Callable[[str], None] = default_warn,
                 max_log_mb: Optional[float] = None, raise_on_nonfinite: bool = False,
                 async_writes: bool = True, flush_secs: float = 5.0, folder: Optional[OpenedFolderLike] = None):
        if max_log_mb is not None and (isinstance(max_log_mb, bool) or not isinstance(max_log_mb, (int, float))
                                       or max_log_mb <= 0):
            raise ValueError(f"max_log_mb must be a positive number or None, got {max_log_mb!r}")
        self.sink = sink
        # The folder's own life (step index, claim, backends, a URL run's mirror): not the
        # writer's job (unitb.life.opening); None for a writer that only writes.
        self.folder = folder
        self.run_dir = folder.run_dir if folder is not None else getattr(sink, "logdir", None)
        self._warn = warn
        self.max_log_mb = max_log_mb
        self.raise_on_nonfinite = bool(raise_on_nonfinite)
        # Told of each non-finite scalar left out (tag, value, step): a sweep's trial tells its agent.
        self.on_nonfinite: Optional[Callable[[str, float, int], None]] = None
        # Told of each finite scalar written (tag, value, step): the run's alert rules watch the loss.
        self.on_scalar: Optional[Callable[[str, float, int], None]] = None
        self._warned: Set[Tuple[str, str]] = set()
        self._heavy_writes = 0
        self.heavy_stopped = False
        self.failures: Dict[str, int] = {}
        self._last_repair = 0.0
        self._dir_missing = False
        self._model_stats: Optional[Tuple[int, int, float]] = None
        self._model_stats_step: Optional[int] = None
        self._broken = False
        self.background: Optional[BackgroundWriter] = None
        if async_writes:
            self.background = BackgroundWriter(
                flush=self._flush_sink, flush_secs=flush_secs,
                report=lambda kind, message: self.warn_once("background", kind, message))

    # ----------------------------------------------------------------- guards
    def warn_once(self, key: str, detail: str, message: str) -> None:
        if (key, detail) in self._warned:
            return
        self._warned.add((key, detail))
        try:
            self._warn(f"unitb: {message}")
        except Exception:
            pass

    def write(self, what: str, fn: Callable[[], object], heavy: bool = False) -> bool:
        """Run ``fn`` (which writes to the sink) guarded: inline, or on the writer thread when
        ``heavy`` (see :meth:`_write`). For records built outside this class (the user's own)."""
        if heavy and not self._heavy_allowed():
            return False
        return self._write(what, fn, heavy)

    def _write(self, what: str, fn: Callable[[], object], heavy: bool = False) -> bool:
        """Run a heavy write (histogram, image) on the background writer; scalars inline.

        A scalar costs the writer a few microseconds of Python that holds the GIL either
        way: handing it to a thread only adds a queue hop and lock contention (measured in
        benchmarks/). Histogram bucketing, drawing and PNG encoding are what move.
        """
        if heavy and self.background is not None:
            return self.background.submit(lambda: self._guarded(what, fn), heavy)
        return self._guarded(what, fn)

    def _guarded(self, what: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
            return True
        except Exception as exc:  # logging must never stop training
            self.failures[what] = self.failures.get(what, 0) + 1
            if value_problem(exc):  # this record's own problem: the writer is fine, nothing to repair
                self.warn_once("write", f"{what}:{type(exc).__name__}",
                               f"could not write {what} ({type(exc).__name__}: {_short(exc)}); that record is "
                               "skipped, training and logging go on")
                return False
            self.warn_once("write", f"{what}:{type(exc).__name__}",
                           f"could not write {what} ({type(exc).__name__}: {exc}); training goes on, "
                           f"later {what} records are attempted again")
            self._broken = True
            self._repair()
            return False

    REPAIR_EVERY_SECS = 5.0

    def check_directory(self) -> None:
        """Notice a run directory deleted under a live writer (its writes would go to an
        unlinked file, silently); when the path comes back, continue in a new event file.
        unitb does not recreate the folder itself: whoever removed it may mean it."""
        present = os.path.isdir(self.sink.logdir)
        if not present and not self._dir_missing:
            self._dir_missing = True
            self.warn_once("fs", "missing", f"the run directory {self.sink.logdir} disappeared; records are lost "
                           "until the path exists again, then logging resumes in a new event file")
        elif present and self._dir_missing:
            self._dir_missing = False
            self._repair(force=True)

    def _repair(self, force: bool = False) -> None:
        """After a write failure: open a new event file (rate-limited) and keep trying at
        each flush until one really lands on disk — a writer opened on a full disk can
        fail silently, so success is judged by the new file having its header."""
        now = time.monotonic()
        if not force and now - self._last_repair < self.REPAIR_EVERY_SECS:
            return
        self._last_repair = now
        reopen = getattr(self.sink, "reopen", None)
        if reopen is None or not os.path.isdir(self.sink.logdir):
            return
        try:
            reopen()
            self.sink.flush()
        except Exception:
            return  # still broken: the next flush tries again, after REPAIR_EVERY_SECS
        newest = max((os.path.join(self.sink.logdir, n) for n in os.listdir(self.sink.logdir) if "tfevents" in n),
                     key=os.path.getmtime, default=None)
        if newest is not None and os.path.getsize(newest) > 0:
            if self._broken:
                self.warn_once("write", "recovered", f"writing to {self.sink.logdir} works again; logging resumed "
                               "in a new event file")
            self._broken = False

    def _heavy_allowed(self) -> bool:
        if self.heavy_stopped:
            return False
        behind = self.folder.behind() if self.folder is not None else None
        if behind:
            self.warn_once("spool", "", behind)
            return False
        if self.max_log_mb is None:
            return True
        self._heavy_writes += 1
        if (self._heavy_writes - 1) % self.QUOTA_CHECK_EVERY != 0:  # check on the 1st, then every Nth
            return True
        size = directory_size_mb(self.sink.logdir)
        if size > self.max_log_mb:
            self.heavy_stopped = True
            self.warn_once("quota", "", f"run directory {self.sink.logdir} holds {size:.1f} MB, over "
                           f"max_log_mb={self.max_log_mb}: images and histograms stop, scalars go on")
            return False
        return True

    def _nonfinite(self, step: int, what: str, where: str, count: int = 1) -> None:
        self._write("scalar", lambda: self.sink.write_scalar(schema.anomaly(what), float(count), step))
        self.warn_once("nonfinite", what, f"non-finite {what} at step {step} in {where}; "
                       f"recorded as {schema.anomaly(what)} (further ones are recorded without a warning)")
        if self.raise_on_nonfinite:
            raise FloatingPointError(f"non-finite {what} at step {step} in {where}")

    # ----------------------------------------------------------------- scalars
    def scalar(self, tag: str, value: object, step: int, anomaly_kind: str = "value") -> bool:
        """Write one scalar under an already-canonical tag. Returns whether it was written."""
        number = as_number(value)
        if number is None:
            self.warn_once("nan-number", tag, f"{tag} is not a number ({type(value).__name__}); skipped")
            return False
        if not math.isfinite(number):
            self.left_out(tag, number, step)
            self._nonfinite(step, anomaly_kind, tag)
            return False
        if self.on_scalar is not None:
            try:
                self.on_scalar(tag, number, int(step))
            except Exception as exc:  # never into training
                self.warn_once("on-scalar", type(exc).__name__, f"a watcher of the scalars failed ({exc})")
        return self._write("scalar", lambda: self.sink.write_scalar(tag, number, int(step)))

    def left_out(self, tag: str, value: float, step: int) -> None:
        """A non-finite scalar was not written: whoever asked (:attr:`on_nonfinite`) is told."""
        if self.on_nonfinite is not None:
            try:
                self.on_nonfinite(tag, value, int(step))
            except Exception as exc:  # never into training
                self.warn_once("nonfinite-note", tag, f"could not note the non-finite {tag} ({exc})")

    def grad_norms(self, step: int, global_norm: object, layers: Optional[Mapping[str, object]] = None,
                   pre_clip: object = None) -> None:
        for tag, value in grad_norm_scalars(global_norm, layers, pre_clip):
            self.scalar(tag, value, step, "gradients")

    def metrics(self, split: str, step: int, values: Mapping[str, object]) -> None:
        """``train/{metric}`` / ``val/{metric}``; nested dicts, strings and arrays are skipped.
        COCO's evaluation reports -1 for a metric it could not measure (AP of large objects
        when there are none): "not defined" is left out, not drawn as a point at -1."""
        for name, value in values.items():
            if not undefined_metric(name, value):
                self.scalar(schema.metric(split, name), value, step, "metric")

    def speed(self, step: int, values: Mapping[str, object]) -> None:
        """``train/time/*``, ``train/throughput``, ``train/memory/*`` (canonical tags, see
        :class:`unitb.life.speed.SpeedMeter`)."""
        for tag, value in values.items():
            self.scalar(tag, value, step)

    def model_stats(self, total: int, trainable: int, size_mb: float, *, at_start: bool = True) -> None:
        """``model/*`` at step 0 (``at_start``; a resumed run has them already) and again at
        the last step when the writer closes (:meth:`model_stats_at`): one point is not drawn
        as a line in TensorBoard's Time Series tab, two are."""
        self._model_stats = (total, trainable, size_mb)
        if at_start:
            self.model_stats_at(0)

    def model_stats_at(self, step: int) -> None:
        """The model statistics given to :meth:`model_stats`, at ``step`` (none given, or
        already written there: nothing)."""
        if self._model_stats is None or self._model_stats_step == step:
            return
        self._model_stats_step = step
        total, trainable, size_mb = self._model_stats
        self.scalar(schema.MODEL_TOTAL_PARAMETERS, total, step)
        self.scalar(schema.MODEL_TRAINABLE_PARAMETERS, trainable, step)
        self.scalar(schema.MODEL_SIZE_MB, size_mb, step)

    # ----------------------------------------------------------------- heavy
    def histograms(self, family: Callable[[str], str], step: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Histograms of ``arrays`` (layer -> values) under ``family(layer)``."""
        for layer, values in arrays.items():
            if not self._heavy_allowed():
                return
            flat = np.asarray(values, dtype=np.float64).reshape(-1)
            finite = np.isfinite(flat)
            if not finite.all():
                kind = "weights" if family is schema.weights_histogram else "gradients"
                self._nonfinite(step, kind, f"layer {layer}", int((~finite).sum()))
                flat = flat[finite]
            if flat.size == 0:
                continue
            tag = family(layer)
            self._write("histogram", functools.partial(self.sink.write_histogram, tag, flat, int(step)), heavy=True)

    def image(self, split: str, step: int, render: Callable[[], np.ndarray]) -> None:
        """``train/image`` or ``val/image`` (:meth:`tagged_image`)."""
        self.tagged_image(schema.image(split), step, render, f"the {split} image")

    def tagged_image(self, tag: str, step: int, render: Callable[[], np.ndarray], what: str) -> None:
        """Render and write one image under ``tag`` on the writer thread.

        ``render`` must only touch host data the caller will not change (it runs later, on
        another thread); a render error becomes one warning naming ``what`` and the image is
        skipped.
        """
        if not self._heavy_allowed():
            return

        def draw_and_write() -> None:
            try:
                picture = render()
            except Exception as exc:
                self.warn_once("image", f"{what}:{type(exc).__name__}",
                               f"could not render {what} at step {step}: {exc}; image skipped")
                return
            self.sink.write_image(tag, picture, int(step))
        self._write("image", draw_and_write, heavy=True)

    # ----------------------------------------------------------------- once per run
    def config(self, text: str) -> None:
        """The run's config for the TEXT tab, credentials redacted (:func:`unitb.files.storage.redact_secrets`)."""
        shown = storage.redact_secrets(str(text))
        self._write("text", lambda: self.sink.write_summary(protos.text_summary(schema.CONFIG, shown), 0))

    def hparams(self, values: Mapping[str, object]) -> None:
        clean = schema.hparams_dict(values, warn=lambda message: self.warn_once("hparams", "none", message))
        if not clean:
            return

        def write() -> None:
            for summary in protos.hparams_summaries(clean):
                self.sink.write_summary(summary, 0)
        self._write("hparams", write)

    def layout(self) -> None:
        self._write("layout", lambda: self.sink.write_summary(
            protos.custom_scalars_summary(schema.custom_scalars_layout()), 0))

    def _flush_sink(self) -> None:
        """Flush the writer, noticing a vanished folder and retrying a broken writer first
        (the writer thread calls this every ``flush_secs``); then tell the folder."""
        self.check_directory()
        if self._broken:
            self._repair()
        if self._guarded("flush", self.sink.flush) and not self._dir_missing and self.folder is not None:
            self.folder.flushed()

    def flush(self) -> None:
        """Write out everything queued so far, then flush the writer (blocks until done)."""
        if self.background is not None:
            self.background.drain()
        self._flush_sink()
        if self.folder is not None:
            self.folder.sync_soon()

    def close(self, wait_for_upload: bool = True) -> None:
        """Close the writer. A URL run then makes its last upload, retried for up to
        ``upload_timeout`` seconds, and the backends' forwarder sends the rest (``wait_for_upload=False``:
        the mirror and forwarder threads go on, and the next writer into the same folder, or the
        interpreter's exit, finishes them)."""
        if self.background is not None:
            self.background.close()
        self._guarded("close", self.sink.close)
        if self.folder is not None:
            self.folder.close(wait_for_upload, lambda message: self.warn_once("mirror", "close", message))
