"""What a run folder needs beside its writer while the run lives, opened and closed in one place.

The writer (:class:`unitb.write.writer.RunLogger`) only names, guards and queues records. The
folder it writes into carries the rest: the step index a resume reads (brought up to date at
each flush), the claim that keeps other writers out, the forwarder that sends the run to
W&B/MLflow, and, for a URL run, the mirror that uploads it. Closing follows one order: the
last step index, the claim let go, the backends caught up, then the last upload (which
carries the backends' state). A writer that closed leaves ``.unitb-ended.json``: a run without
it and without a live writer ended by a crash.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Mapping, Optional

from unitb.backends import forwarder as forwarding
from unitb.folder import claim
from unitb.files import json_files
from unitb.files.names import ENDED
from unitb.folder import step_index
from unitb.notices import default_warn


class OpenedFolder:
    """A run folder while its writer lives. ``url``: the store's URL of a URL run (``logdir``
    is then its local spool, uploaded by ``mirror``)."""

    def __init__(self, logdir: str, *, url: Optional[str] = None, mirror=None, forwarder=None):
        self.logdir = logdir
        self.url = url
        self.mirror = mirror
        self.forwarder = forwarder

    @property
    def run_dir(self) -> str:
        """Where the run is, as a user named it: the URL of a URL run, else the folder."""
        return self.url or self.logdir

    def behind(self) -> Optional[str]:
        """Why heavy records should wait (a mirror whose spool is over its bound), or None."""
        return self.mirror.over_limit() if self.mirror is not None else None

    def flushed(self) -> None:
        """After the writer flushed: bring the step index up to date (what a resume with
        nothing to set aside reads; only a faster resume is lost if this fails)."""
        try:
            step_index.update(self.logdir)
        except Exception:
            pass

    def sync_soon(self) -> None:
        """Ask a URL run's mirror to upload soon (a checkpoint may follow), not now."""
        if self.mirror is not None:
            self.mirror.request_sync()

    def close(self, wait_for_upload: bool, warn: Callable[[str], None]) -> None:
        """After the writer closed. ``wait_for_upload=False``: the mirror and forwarder threads
        go on, and the next writer into the same folder, or the interpreter's exit, ends them."""
        self.flushed()  # the last records, for the next resume
        mark_ended(self.logdir)
        claim.release(self.logdir)  # its event files keep the folder taken now
        if self.mirror is not None and not wait_for_upload:
            self.mirror.request_sync()
            return
        if self.forwarder is not None and wait_for_upload:
            self.forwarder.close()  # bounded by backend_timeout; before the last upload, which carries its state
        if self.mirror is not None:
            try:  # the last upload: retried for upload_timeout seconds, then one warning
                self.mirror.close()
            except Exception as exc:
                warn(f"final upload failed ({type(exc).__name__}: {exc})")


def mark_ended(folder: str) -> None:
    """Say in the folder that its writer closed cleanly (``unitb.runs`` reads a run without the
    mark, and without a live writer, as crashed); the next writer into the folder removes it."""
    try:
        json_files.write(os.path.join(folder, ENDED), {"time": time.time()})
    except OSError:
        pass  # a full or read-only disk: the run reads as crashed, nothing else is lost


def clear_ended(folder: str) -> None:
    try:
        os.remove(os.path.join(folder, ENDED))
    except OSError:
        pass


def open_folder(logdir: str, *, url: Optional[str] = None, mirror=None,
                backends: Optional[Mapping[str, Mapping[str, object]]] = None, start_step: int = 0,
                warn: Callable[[str], None] = default_warn, backend_timeout: float = 30.0,
                run_name: Optional[str] = None, forwarder=None) -> OpenedFolder:
    """The folder a writer writes into, with its forwarder started (or, ``forwarder``, the one of
    an earlier writer into the same folder: a Keras fit before this one)."""
    clear_ended(logdir)  # a resume, or a Keras fit after another: the run goes on
    if forwarder is None or forwarder.folder != logdir:
        name = run_name or os.path.basename(os.path.normpath(url or logdir))
        forwarder = forwarding.start(logdir, backends or {}, start_step, warn, timeout=backend_timeout,
                                     run_name=name)
    return OpenedFolder(logdir, url=url, mirror=mirror, forwarder=forwarder)
