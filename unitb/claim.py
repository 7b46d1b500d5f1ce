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
"""
from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Any, Dict, Iterable, Mapping, Optional

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CLAIM = ".unitb-claim"

_HELD: Dict[str, int] = {}  # folder -> descriptor holding its lock, for this process's runs


def _who() -> bytes:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()


def claim_folder(folder: str, own_files: Iterable[str] = ()) -> bool:
    """Make ``folder`` this process's run folder; False when another live run holds it or it
    holds another run's event files (``own_files``: event files this run already opened
    there). Creates the folder. Claiming a folder this process already holds succeeds."""
    folder = os.path.abspath(folder)
    if folder in _HELD:
        return True
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, CLAIM)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    if fcntl is None:
        try:
            fd = os.open(path, flags | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
    else:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return False  # a link put where the claim goes: never followed, the folder is not taken
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False  # a live run holds it
    from unitb.reader import other_event_files

    if other_event_files(folder, own_files):
        _close(fd)
        return False  # a finished run's folder
    try:
        os.ftruncate(fd, 0)
        os.write(fd, _who())  # for a person who wonders whose folder this is
    except OSError:
        pass
    _HELD[folder] = fd
    return True


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
    from unitb import storage

    fs, path = storage.filesystem(url, storage_options)
    try:
        fs.pipe_file(f"{path}/{CLAIM}", _who(), mode="create")
        return True
    except FileExistsError:
        return False
    except Exception:
        return None
