"""Copy a local run folder (the spool) to an object store on a background thread.

Training never waits on the store: writers write locally as always; this thread uploads
what changed every ``interval`` seconds (and when asked, e.g. at a checkpoint), and when the
store does not answer it backs off, says so once, and tries again. Object stores cannot
append, so a grown event file is uploaded again whole — the same thing TensorFlow's own GCS
writer does at each flush — at most once per ``interval`` per 64 MB of its size (every change
goes at a checkpoint and at the end), so the traffic stays bounded as a run grows.

What was uploaded is remembered in ``<spool>/.unitb-mirror.json`` (size and mtime per
file), so a restarted process uploads only what is new, and after any failure the store's
listing is compared with it (a store that lost objects gets them again).

Deleting is narrow on purpose: a remote object is deleted only when unitb's resume clean-up
moved its local file into ``.unitb-removed/`` and that copy is already in the store. A spool
file deleted by hand (to free disk) is never deleted from the store.
"""
from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from unitb.files.copying import copy_bytes
from unitb.write import background
from unitb.files import json_files
from unitb.files import safe_paths
from unitb.files import storage
from unitb.notices import default_info, default_warn
from unitb.files.names import (ALERTS_FOLDER, BACKENDS_STATE, CLAIM, COMPACT_TMP, IN_MODEL_SUFFIX, MIRROR_STATE,
                               REMOVED, RESUME_JOURNAL, STEP_INDEX)
from unitb.folder.set_aside import removed_name

STATE = MIRROR_STATE
REUPLOAD_MB = 64
_SKIP = {STATE, STATE + ".tmp", RESUME_JOURNAL, RESUME_JOURNAL + ".tmp", COMPACT_TMP, CLAIM, BACKENDS_STATE + ".tmp",
         STEP_INDEX, STEP_INDEX + ".tmp"}  # the step index names this machine's inodes: no use elsewhere


def local_files(folder: str) -> Dict[str, Tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of what belongs in the store (unitb's own
    bookkeeping files left out)."""
    found: Dict[str, Tuple[int, int]] = {}
    for current, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != ALERTS_FOLDER]  # they may hold a webhook's URL: not for the store
        for name in names:
            if name in _SKIP or name.endswith(".tmp"):
                continue
            path = os.path.join(current, name)
            try:
                st = os.stat(path)
                if name.endswith(IN_MODEL_SUFFIX) and _header_only(path, st.st_size):
                    continue  # opened at every fit, removed at its end when the model wrote nothing
            except OSError:
                continue
            found[os.path.relpath(path, folder).replace(os.sep, "/")] = (st.st_size, st.st_mtime_ns)
    return found


def _header_only(path: str, size: int) -> bool:
    """An event file that holds its file-version record and nothing else."""
    if size < 12:
        return True
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    return size <= 12 + length + 4


class Mirror:
    """Keeps ``url`` a copy of the local folder ``local``."""

    def __init__(self, local: str, url: str, storage_options: Optional[Mapping[str, Any]] = None, *,
                 interval: float = 30.0, max_backlog_mb: Optional[float] = None, upload_timeout: float = 60.0,
                 warn: Callable[[str], None] = default_warn, info: Callable[[str], None] = default_info,
                 owner: str = "unitb") -> None:
        self.local = os.path.abspath(local)
        self.url = storage.normalize_url(url)
        self.fs, self.root = storage.filesystem(self.url, storage_options)
        self.interval = float(interval)
        self.max_backlog_bytes = None if max_backlog_mb is None else float(max_backlog_mb) * (1 << 20)
        self.upload_timeout = float(upload_timeout)
        self.owner = owner
        self._warn, self._info = warn, info
        self._lock = threading.Lock()
        self._uploaded: Dict[str, Tuple[int, int]] = self._load_state()
        self._sent_at: Dict[str, float] = {}  # monotonic time of each file's last upload
        self._md5: Dict[str, str] = {}  # MD5 of the bytes this process last uploaded, per file
        self._force = False  # the next pass sends every change (a checkpoint was written)
        self._check_store = True  # compare with the store's listing at the next sync
        self._behind = False
        self._warned_behind = False
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._deadline = 0.0
        self._thread: Optional[threading.Thread] = None
        self._backlog_checked = 0.0
        self._backlog_cache = 0

    # ------------------------------------------------------------------ state
    def _state_path(self) -> str:
        return os.path.join(self.local, STATE)

    def _load_state(self) -> Dict[str, Tuple[int, int]]:
        data = json_files.read_dict(self._state_path())
        if data.get("url") != self.url:
            return {}
        try:
            files = data.get("files", {})
            return {k: (int(v[0]), int(v[1])) for k, v in files.items()} if isinstance(files, dict) else {}
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return {}

    def _save_state(self) -> None:
        with self._lock:
            data = {"url": self.url, "files": {k: list(v) for k, v in self._uploaded.items()}}
        os.makedirs(self.local, exist_ok=True)
        json_files.write(self._state_path(), data)

    def _remote(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    # ------------------------------------------------------------------ one pass
    def pending(self) -> Dict[str, Tuple[int, int]]:
        """Local files the store does not have as they are now."""
        with self._lock:
            done = dict(self._uploaded)
        return {rel: sig for rel, sig in local_files(self.local).items() if done.get(rel) != sig}

    def backlog_bytes(self) -> int:
        with self._lock:
            done = dict(self._uploaded)
        total = 0
        for rel, (size, mtime) in local_files(self.local).items():
            if done.get(rel) != (size, mtime):
                total += size - (done[rel][0] if rel in done and done[rel][0] <= size else 0)
        return total

    def over_limit(self) -> Optional[str]:
        """A reason to pause images and histograms while the backlog is over its bound (the
        spool would otherwise grow without end while the store is away); ``None`` otherwise.
        Checked at most once a second."""
        if self.max_backlog_bytes is None:
            return None
        now = time.monotonic()
        if now - self._backlog_checked >= 1.0:
            self._backlog_checked = now
            self._backlog_cache = self.backlog_bytes()
        if self._backlog_cache <= self.max_backlog_bytes:
            return None
        return (f"{self._backlog_cache / (1 << 20):.1f} MB of this run wait in {self.local} for {self.url}, over "
                f"max_spool_mb={self.max_backlog_bytes / (1 << 20):g}: images and histograms pause until the "
                "store catches up; scalars go on")

    def _compare_with_store(self) -> None:
        """Forget uploads the store no longer holds as uploaded (so they are sent again)."""
        sizes = storage.listing(self.fs, self.root)
        with self._lock:
            for rel, (size, _mtime) in list(self._uploaded.items()):
                if sizes.get(rel) != size:
                    del self._uploaded[rel]

    def _upload(self, rel: str, size: int) -> None:
        """Copy the first ``size`` bytes (the file as it was scanned; a writer may append more
        meanwhile, which the next pass sends)."""
        source = os.path.join(self.local, rel)
        digest = hashlib.md5(usedforsecurity=False)
        with open(source, "rb") as src, self.fs.open(self._remote(rel), "wb") as dst:
            copy_bytes(src, dst, size, on_block=digest.update)
        with self._lock:
            self._md5[rel] = digest.hexdigest()

    def verify_store(self) -> List[str]:
        """Compare the store's copy with what was uploaded — size, and the MD5 where the store
        gives one — and forget every file that differs (a cut object, one a store restarted
        empty lost), so the next pass sends it again. Returns those files."""
        remote = storage.signatures(self.fs, self.root)
        local = local_files(self.local)
        differ = []
        with self._lock:
            for rel, (size, _mtime) in list(self._uploaded.items()):
                if rel not in local:
                    continue  # moved into the trash, or deleted by hand: not the store's to hold now
                there = remote.get(rel)
                md5 = self._md5.get(rel)
                if there is None or there[0] != size or (md5 and there[1] and there[1] != md5):
                    del self._uploaded[rel]
                    differ.append(rel)
        return sorted(differ)

    def _removable(self, local: Mapping[str, Tuple[int, int]]) -> List[str]:
        """Uploaded files that unitb's resume clean-up moved into ``.unitb-removed`` (their
        copy there is in the store by now): the only remote objects this class deletes."""
        with self._lock:
            done = dict(self._uploaded)
        trash_names = {rel.rsplit("/", 1)[-1] for rel in local if f"{REMOVED}/" in rel and done.get(rel) == local[rel]}
        return [rel for rel in done if rel not in local and REMOVED not in rel
                and removed_name(rel.rsplit("/", 1)[-1]) in trash_names]

    def _due(self, rel: str, size: int, now: float) -> bool:
        """A file the store has in an older version is sent again at most once per interval per
        REUPLOAD_MB of its size: a 640 MB event file every 10 intervals, so the traffic of a
        growing run stays near REUPLOAD_MB per interval however big the run gets."""
        last = self._sent_at.get(rel)
        return last is None or now - last >= self.interval * max(1.0, size / (REUPLOAD_MB << 20))

    def sync_once(self, force: bool = True) -> int:
        """One pass: uploads, then the deletes of replaced objects (``force=False``: big files
        that changed only when due, see :meth:`_due`). Raises when the store fails; returns
        the number of objects written."""
        if self._check_store:
            self._compare_with_store()
            self._check_store = False
        local = local_files(self.local)
        now = time.monotonic()
        with self._lock:
            todo = sorted(rel for rel, sig in local.items() if self._uploaded.get(rel) != sig
                          and (force or rel not in self._uploaded or self._due(rel, sig[0], now)))
        written = 0
        try:
            for rel in todo:
                size, mtime = local[rel]
                self._upload(rel, size)
                with self._lock:
                    self._uploaded[rel] = (size, mtime)
                    self._sent_at[rel] = time.monotonic()
                written += 1
            for rel in self._removable(local):
                try:
                    self.fs.rm(self._remote(rel))
                except FileNotFoundError:
                    pass
                with self._lock:
                    self._uploaded.pop(rel, None)
        finally:
            if written or todo:
                try:
                    self._save_state()
                except OSError:
                    pass
        return written

    # ------------------------------------------------------------------ pulling
    def pull(self) -> int:
        """Bring the store's copy of this run into the spool (a restart on a fresh machine,
        or one whose spool is older than the store). A local file with changes not yet
        uploaded wins; ``.unitb-removed`` is left in the store. Returns files fetched."""
        local = local_files(self.local)
        listing = storage.listing(self.fs, self.root)
        wanted = [rel for rel in sorted(listing)
                  if REMOVED not in rel.split("/") and rel.rsplit("/", 1)[-1] not in _SKIP]
        targets, refused = safe_paths.plan_targets(wanted, self.local)
        if refused:
            self._warn(f"{self.owner}: {safe_paths.describe_refused(refused, self.url)}")
        fetched = 0
        for rel, target in targets.items():
            size = listing[rel]
            with self._lock:
                done = self._uploaded.get(rel)
            if rel in local and (local[rel][0] == size or done != local[rel]):
                continue  # the same, or local changes still to upload
            storage.fetch_file(self.fs, self._remote(rel), target)
            st = os.stat(target)
            with self._lock:
                self._uploaded[rel] = (st.st_size, st.st_mtime_ns)
            fetched += 1
        if fetched:
            self._save_state()
        self._check_store = False
        return fetched

    # ------------------------------------------------------------------ thread
    def start(self) -> "Mirror":
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="unitb-mirror", daemon=True)
            self._thread.start()
            _OPEN.add(self)
            background.then_at_exit(_close_open_mirrors)
        return self

    @staticmethod
    def running(local: str, url: str) -> Optional["Mirror"]:
        """The mirror still running for this folder (a Keras callback's earlier fit leaves its
        mirror uploading rather than wait at the fit's end): one thread per folder."""
        for mirror in list(_OPEN):
            if mirror.local == os.path.abspath(local) and mirror.url == url and not mirror._closing:
                return mirror
        return None

    def request_sync(self) -> None:
        """Upload every change soon (a checkpoint was written, say), without waiting for it."""
        self._force = True
        self._wake.set()

    def _attempt(self, force: bool = True) -> bool:
        try:
            self.sync_once(force)
        except Exception as exc:
            self._check_store = True
            if not self._behind:
                self._behind = True
                if not self._warned_behind and not self._closed:  # after close() has said it all
                    self._warned_behind = True
                    self._warn(f"{self.owner}: uploads to {self.url} are behind ({type(exc).__name__}: {exc}); "
                               f"training goes on, the run is kept in {self.local} and sent when the store "
                               "answers")
            return False
        if self._behind:
            self._behind = False
            self._info(f"unitb: uploads to {self.url} caught up")
        return True

    def _loop(self) -> None:
        delay = self.interval
        while not self._closing:
            self._wake.wait(delay)
            self._wake.clear()
            if self._closing:
                break
            force, self._force = self._force, False
            # Back off while the store is away (0.5 s, 1 s, 2 s … up to the interval or 10 s).
            delay = self.interval if self._attempt(force) else min(max(2 * delay, 0.5), max(self.interval, 10.0))
        self._final_uploads()

    VERIFY_ROUNDS = 3

    def _final_uploads(self) -> None:
        """Upload what is left, then check the store's copy against the local files and send
        again what differs (a store can drop or cut an object after it took it, or restart
        empty within its client's retries), until both agree or ``upload_timeout`` is spent."""
        delay = 0.5
        rounds = 0
        while True:
            if self._attempt():
                try:
                    differ = self.verify_store()
                except Exception:
                    differ = None  # the listing failed: the store is away again
                if differ == []:
                    return
                if differ:
                    self._info(f"{self.owner}: the store's copy of {len(differ)} file(s) of {self.url} differed from "
                               f"this run's ({', '.join(differ[:3])}{' …' if len(differ) > 3 else ''}); sending "
                               "them again")
                    rounds += 1
                    if rounds >= self.VERIFY_ROUNDS:
                        self._attempt()  # one last send; close() names what is still not whole
                        return
                    continue
            if time.monotonic() + delay >= self._deadline:
                return
            time.sleep(delay)
            delay = min(2 * delay, 10.0)

    def close(self, timeout: Optional[float] = None) -> bool:
        """Stop the thread after a last upload, retried for up to ``timeout`` seconds
        (``upload_timeout``); this call returns by then even if a request hangs. Returns
        True when the store holds everything; else warns once, naming ``unitb push``."""
        if self._closed:
            return not self.pending()
        wait = self.upload_timeout if timeout is None else float(timeout)
        self._deadline = time.monotonic() + wait
        self._closing = True
        self._wake.set()
        if self._thread is None:
            self._final_uploads()
        else:
            self._thread.join(wait + 1.0)
        self._closed = True
        _OPEN.discard(self)
        left = sorted(self.pending())
        if left:
            names = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            self._warn(f"{self.owner}: the store does not hold {len(left)} file(s) of this run whole at {self.url} "
                       f"({names}); they are in {self.local}: `unitb push {self.local} {self.url}` sends them")
        return not left


_OPEN: "weakref.WeakSet[Mirror]" = weakref.WeakSet()


def _close_open_mirrors(seconds: Optional[float] = None) -> None:
    """At exit (and on SIGTERM, e.g. a preempted job) a script that never closed its logger
    still gets its last records uploaded: after the writers are written out
    (:func:`unitb.write.background.flush_all` runs this last), within ``seconds`` per mirror."""
    for mirror in list(_OPEN):
        try:
            mirror.close(None if seconds is None else min(seconds, mirror.upload_timeout))
        except Exception:
            pass
