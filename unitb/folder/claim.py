"""Claiming a run folder, atomically: runs started at the same moment never share one.

Looking for event files is not enough to tell a free folder from a taken one: jobs of a
sweep started together all look before any of them has written, all see an empty folder,
and all write into it (TensorBoard then shows one run made of five). So a fresh run
*claims* the folder it picked, and takes the next version when the claim fails.

- **Local folders**: the claim is an exclusive ``flock`` on ``<folder>/.unitb-claim``, held
  by the process for the life of the run (released at ``close()`` or when the process
  ends, however it ends). A folder is free when nobody holds its lock *and* it holds no
  other run's event files; a crashed run that never wrote leaves no stale claim. Where
  ``flock`` does not exist (Windows), the claim is the exclusive creation of that file.
- **Store URLs**: the claim is an object ``<url>/.unitb-claim`` created with the store's
  create-only write (fsspec ``pipe_file(mode="create")``: S3 ``PutObject`` with
  ``If-None-Match: *``, GCS ``ifGenerationMatch=0``). Only one writer can create it; the
  others get ``FileExistsError`` and move on. A store without that primitive answers
  otherwise: the claim then falls back to its listing (racy between machines) and says so
  once.
- **Resumes**: a resumed run continues a folder that holds its own history, so the event
  files do not decide; the lock alone does. A resume waits up to ``resume_wait`` seconds for
  the process that holds the lock (an interrupted job that is not dead yet) to let go, and
  then refuses with :class:`FolderBusy`: two writers never share one folder, and a second
  resume of the same run started at the same moment gets the same clear error instead of
  rewriting the files under the first one.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Any, Dict, Iterable, Mapping, Optional

from unitb.files.names import CLAIM
from unitb.files import storage
from unitb.files.event_files import other_event_files

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


_HELD: Dict[str, int] = {}  # folder -> descriptor holding its lock, for this process's runs


def _who() -> bytes:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()


class FolderBusy(RuntimeError):
    """A resume found its run folder held by a live process (see the module docstring)."""


def _lock(folder: str) -> Optional[int]:
    """A descriptor holding ``folder``'s claim lock, or None when another open claim holds it
    (in this process or another). Creates the folder."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CLAIM)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    if fcntl is None:
        try:
            return os.open(path, flags | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None  # a link put where the claim goes: never followed, the folder is not taken
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None  # a live run holds it
    return fd


def _hold(folder: str, fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.write(fd, _who())  # for a person (and a waiting resume) who wonders whose folder this is
    except OSError:
        pass
    _HELD[folder] = fd


def claim_folder(folder: str, own_files: Iterable[str] = ()) -> bool:
    """Make ``folder`` this process's run folder; False when another live run holds it or it
    holds another run's event files (``own_files``: event files this run already opened
    there). Creates the folder. Claiming a folder this process already holds succeeds."""
    folder = os.path.abspath(folder)
    if folder in _HELD:
        return True
    fd = _lock(folder)
    if fd is None:
        return False

    if other_event_files(folder, own_files):
        _close(fd)
        return False  # a finished run's folder
    _hold(folder, fd)
    return True


def holder(folder: str) -> str:
    """Who holds ``folder``'s claim, in words ("pid 12 on node-3 since 14:02:11"), or ""."""
    try:
        with open(os.path.join(folder, CLAIM), "rb") as handle:
            who = json.loads(handle.read(4096) or b"{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(who["time"])))
        return f"pid {who['pid']} on {who['host']} since {since}"
    except Exception:
        return ""


def claim_for_resume(folder: str, wait: float, owner: str = "unitb") -> None:
    """Hold ``folder``'s claim for a resumed run: wait up to ``wait`` seconds for a live
    writer (the interrupted job, or another resume of it) to let go, then raise
    :class:`FolderBusy` naming it. Nothing in the folder is touched before the claim is held."""
    folder = os.path.abspath(folder)
    if fcntl is None:
        return  # no lock that dies with its process: a stale claim file would block every resume
    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        fd = _lock(folder)
        if fd is not None:
            release(folder)  # a claim this process held before, closed without release: replaced
            _hold(folder, fd)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            who = holder(folder)
            raise FolderBusy(
                f"{owner}: cannot resume in {folder}: a live process still writes there"
                f"{f' ({who})' if who else ''} after waiting {wait:g} s (resume_wait). A resume never shares a "
                "folder with a live writer: stop that process (or wait for it to end) and start again, or "
                "raise resume_wait")
        time.sleep(min(0.2, remaining))


def _close(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def release(folder: Optional[str]) -> None:
    """Let go of this process's claim on ``folder`` (its event files keep it taken)."""
    if folder is None:
        return
    fd = _HELD.pop(os.path.abspath(folder), None)
    if fd is not None:
        try:
            _close(fd)
        except OSError:
            pass


def claim_url(url: str, storage_options: Optional[Mapping[str, Any]] = None) -> Optional[bool]:
    """Create ``<url>/.unitb-claim`` only if it does not exist. True: claimed; False: another
    run claimed it first; None: the store has no create-only write (or failed), so nothing
    atomic can be said (the caller falls back to the listing)."""
    fs, path = storage.filesystem(url, storage_options)
    try:
        fs.pipe_file(f"{path}/{CLAIM}", _who(), mode="create")
        return True
    except FileExistsError:
        return False
    except Exception:
        return None
