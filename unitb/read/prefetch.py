"""A folder of runs in a store, fetched ahead of the workers that read them.

A worker that reads a run straight from a store waits on the network block by block, and each
worker process starts a client of its own. So for a folder of runs behind a URL, this process
fetches the runs' event files itself — one client, one listing for the whole folder, the files of
several runs requested at once — into a local spool, a few runs ahead of the workers, which read
the local copies at disk speed; while they parse one run, the next ones arrive. A run's copy is
removed as soon as its result is taken, so the spool holds only the runs in flight. A run that
cannot be fetched is handed over as its URL: its worker reads it from the store as before.
"""
from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from typing import Dict, Iterator, List, Optional, Tuple

from unitb.files import storage
from unitb.files.event_files import is_event_file

BATCH_RUNS = 4  # runs whose files are asked for in one concurrent request
AHEAD_BATCHES = 2  # batches fetched ahead of the workers


class Prefetch:
    """``(name, folder)`` of each run, in order, ``folder`` a local copy where it could be fetched."""

    def __init__(self, root: str, runs: List[Tuple[str, str]], spool_dir: Optional[str] = None) -> None:
        self._runs = runs
        self._fs, self._root = storage.filesystem(root)
        self._spool = tempfile.mkdtemp(prefix="unitb-fetch-", dir=spool_dir)
        self._ready: "queue.Queue[Optional[List[Tuple[str, str]]]]" = queue.Queue(maxsize=AHEAD_BATCHES)
        self._handed: List[str] = []  # local copies handed out, oldest first
        self._stop = threading.Event()
        # Started at the first run asked for: the workers are forked before it (never under a thread).
        self._thread = threading.Thread(target=self._fetch_all, name="unitb-prefetch", daemon=True)

    def _files_by_run(self) -> Dict[str, List[str]]:
        """Each run folder's event files (store paths), from one listing; the worker reading a
        copy puts them in writing order itself."""
        found: Dict[str, List[str]] = {}
        for path in self._fs.find(self._root):
            folder, _, name = path.rpartition("/")
            if is_event_file(name):
                found.setdefault(folder, []).append(path)
        return found

    def _fetch_all(self) -> None:
        try:
            files = self._files_by_run()
        except Exception:
            files = {}
        for start in range(0, len(self._runs), BATCH_RUNS):
            if self._stop.is_set():
                return
            batch = self._runs[start:start + BATCH_RUNS]
            self._ready.put(self._fetch(start, batch, files))
        self._ready.put(None)

    def _fetch(self, start: int, batch: List[Tuple[str, str]], files: Dict[str, List[str]]) -> List[Tuple[str, str]]:
        remote: List[str] = []
        local: List[str] = []
        out: List[Tuple[str, str]] = []
        for offset, (name, url) in enumerate(batch):
            paths = files.get(storage.filesystem(url)[1], []) if storage.is_url(url) else []
            if not paths:
                out.append((name, url))  # a local run, or nothing listed: its worker reads it where it is
                continue
            folder = os.path.join(self._spool, f"{start + offset:07d}")
            os.makedirs(folder)
            remote += paths
            local += [os.path.join(folder, path.rpartition("/")[2]) for path in paths]
            out.append((name, folder))
        if remote:
            try:
                self._fs.get(remote, local)  # one call: the store's client asks for them side by side
            except Exception:
                return batch  # read from the store by the workers, as before
        return out

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        while True:
            batch = self._ready.get()
            if batch is None:
                return
            for name, folder in batch:
                if os.path.dirname(folder) == self._spool:  # a copy of ours (never a run given as local)
                    self._handed.append(folder)
                yield name, folder

    def taken(self, folder: str) -> None:
        """The result of the run read from ``folder`` was taken: its copy goes (a folder that is not
        one of this spool's copies is left alone)."""
        if folder in self._handed:
            self._handed.remove(folder)
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        self._stop.set()
        while self._thread.ident is not None and self._thread.is_alive():  # let a thread blocked on a full queue finish
            try:
                self._ready.get(timeout=0.1)
            except queue.Empty:
                pass
        shutil.rmtree(self._spool, ignore_errors=True)
