"""Keep file I/O off the training thread: one background writer thread per run.

The training thread only enqueues small closures over host data (a numpy copy of a layer,
a picture's arrays); bucketing histograms, drawing and PNG-encoding images and writing
those records happen on the ``unitb-writer`` thread. (Scalars are written inline by the
run logger: they are cheaper than a queue hop.)

Policy when the bounded queue is full (the disk cannot keep up):

* heavy records (images, histograms) are dropped at once, counted, and reported in one
  warning (the count is in ``dropped``);
* scalars and everything else wait up to ``block_secs`` for room; only if the writer is
  still stuck are they dropped, counted and reported — never silently.

Durability: the writer flushes every ``flush_secs`` (default 5 s), so a hard crash
(SIGKILL, power loss) loses at most that much; ``flush()``/``close()``, interpreter exit
(``atexit``) and SIGTERM (when no other handler is installed) write everything queued.
"""
from __future__ import annotations

import atexit
import os
import queue
import signal
import threading
import time
import weakref
from typing import Callable, Dict, List, Optional

_LIVE: "weakref.WeakSet[BackgroundWriter]" = weakref.WeakSet()
_SIGTERM_INSTALLED = False
_STOP = object()


_EXIT_STEPS: List[Callable[[float], None]] = []


def then_at_exit(step: Callable[[float], None]) -> None:
    """Run ``step(seconds)`` at exit (atexit or SIGTERM) *after* every writer is written out:
    how a URL run's last upload sees the last records (``unitb.store.mirror``)."""
    if step not in _EXIT_STEPS:
        _EXIT_STEPS.append(step)
    _install_exit_hooks()


def write_out_all(timeout: float = 30.0) -> None:
    """Write out every live background writer and flush its file."""
    for writer in list(_LIVE):
        try:
            writer.drain(timeout)
            writer.flush_sink()
        except Exception:
            pass


def flush_all(timeout: float = 30.0) -> None:
    """Write out every live background writer, then run the exit steps (atexit / SIGTERM)."""
    write_out_all(timeout)
    for step in list(_EXIT_STEPS):
        try:
            step(timeout)
        except Exception:
            pass


def _on_sigterm(signum, frame) -> None:
    flush_all(timeout=10.0)  # a preempted job typically has ~30 s: the last upload gets 10
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_exit_hooks() -> None:
    global _SIGTERM_INSTALLED
    if _SIGTERM_INSTALLED:
        return
    _SIGTERM_INSTALLED = True
    atexit.register(flush_all)
    try:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread / no signals here: atexit still works
        pass


class BackgroundWriter:
    """Runs submitted jobs in order on one daemon thread, with a bounded queue."""

    def __init__(self, flush: Callable[[], None], report: Callable[[str, str], None], max_queue: int = 256,
                 flush_secs: float = 5.0, block_secs: float = 2.0):
        self._flush = flush
        self._report = report  # (kind, message) -> one warning per kind, by the run logger
        self.flush_secs = flush_secs
        self.block_secs = block_secs
        self.dropped: Dict[str, int] = {"heavy": 0, "light": 0}
        self._queue: "queue.Queue" = queue.Queue(max_queue)
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="unitb-writer", daemon=True)
        self._thread.start()
        _LIVE.add(self)
        _install_exit_hooks()

    def submit(self, job: Callable[[], object], heavy: bool) -> bool:
        """Queue ``job``; False (and counted) if it had to be dropped."""
        if self._closed:
            job()  # after close: write synchronously rather than lose it
            return True
        try:
            if heavy:
                self._queue.put_nowait(job)
            else:
                self._queue.put(job, timeout=self.block_secs)
            return True
        except queue.Full:
            kind = "heavy" if heavy else "light"
            self.dropped[kind] += 1
            what = "images/histograms" if heavy else "scalar records"
            self._report(f"queue-{kind}", f"the writer queue is full (the disk is slower than logging): "
                         f"dropping {what}; {self.dropped[kind]} dropped so far (see .dropped)")
            return False

    def _work(self) -> None:
        last_flush = time.monotonic()
        while True:
            timeout = max(0.05, self.flush_secs - (time.monotonic() - last_flush))
            try:
                job = self._queue.get(timeout=timeout)
            except queue.Empty:
                job = None
            if job is _STOP:
                self._queue.task_done()
                return
            if job is not None:
                try:
                    job()
                except Exception as exc:  # jobs guard themselves; this keeps the thread alive regardless
                    self._report("job", f"a background write failed ({type(exc).__name__}: {exc})")
                finally:
                    self._queue.task_done()
            if time.monotonic() - last_flush >= self.flush_secs:
                self.flush_sink()
                last_flush = time.monotonic()

    def flush_sink(self) -> None:
        try:
            self._flush()
        except Exception as exc:
            self._report("flush", f"could not flush ({type(exc).__name__}: {exc})")

    def drain(self, timeout: Optional[float] = None) -> None:
        """Wait until every queued job has run (``timeout`` seconds at most)."""
        if timeout is None:
            self._queue.join()
            return
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        if self._closed:
            return
        self.drain()
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        _LIVE.discard(self)
