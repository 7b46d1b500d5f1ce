"""A folder of runs read as one — a sweep's trials, a team's experiments: what ``unitb tags``,
``unitb export`` and ``unitb diff`` do with a folder that holds runs below it.

Each run is read by a worker (:mod:`unitb.read.parallel`), in the runs' order. An export's
text is written by the workers into files of their own and copied into the output run after
run, so the output is the same as one process would write and memory holds only the runs
in flight; a run's name (its folder relative to the exported one) is the first column.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections import deque
from typing import IO, Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from unitb.files.copying import copy_bytes
from unitb.files import storage
from unitb.read import diff, parallel, run_reader
from unitb.read.prefetch import Prefetch
from unitb.read.row_text import CSV_HEADER, RunText, csv_line



def runs_below(root: str) -> List[Tuple[str, str]]:
    """``(name, folder)`` of every run below ``root`` (itself included, named ``.``), from one
    listing; what resumes set aside and a log root's experiment summary (``unitb hparams``) are
    no runs (``run_reader.find_runs``)."""
    found = run_reader.find_runs(root)
    if storage.is_url(root):
        base = root.rstrip("/")
        return [(run[len(base):].strip("/") or ".", run) for run in found]
    return [(os.path.relpath(run, root), run) for run in found]


def over_runs(work: Callable[[Tuple], Any], root: str, runs: List[Tuple[str, str]],
              extra: Tuple = ()) -> Iterator[Tuple[str, Any]]:
    """``(name, work((name, folder, *extra)))`` for each run, read in parallel, in order. Below a
    store URL the runs are fetched ahead into local copies the workers read
    (:mod:`unitb.read.prefetch`), each copy removed once its result is taken."""
    if not storage.is_url(root) or len(runs) < 2:
        results = parallel.in_order(work, [run + extra for run in runs], parallel.workers_for(root, len(runs)))
        for (name, _folder), result in zip(runs, results):
            yield name, result
        return
    fetch = Prefetch(root, runs)
    handed: Deque[Tuple[str, str]] = deque()

    def items() -> Iterator[Tuple]:
        for run in fetch:
            handed.append(run)
            yield run + extra

    try:
        for result in parallel.in_order(work, items(), parallel.workers_for(root, len(runs), fetched=True)):
            name, folder = handed.popleft()
            fetch.taken(folder)
            yield name, result
    finally:
        fetch.close()


def _summary(run: Tuple[str, str]) -> List[Dict[str, object]]:
    return run_reader.tag_summary(run[1])


def tag_summaries(root: str, runs: List[Tuple[str, str]]) -> Iterator[Tuple[str, List[Dict[str, object]]]]:
    """``(name, tag summary)`` of each run, read in parallel, in order."""
    yield from over_runs(_summary, root, runs)


def _layout(run: Tuple[str, str]) -> diff.RunLayout:
    return diff.layout_of(run[1])


def layouts(root: str, folders: List[str]) -> List[diff.RunLayout]:
    """The layout of each run (``unitb diff``), read in parallel, in order."""
    return [layout for _name, layout in over_runs(_layout, root, [(folder, folder) for folder in folders])]


class JsonArray:
    """A JSON array written piece by piece: each piece is objects each followed by ``,\\n``;
    the last separator is never written (the array closes without it)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._lead = b"\n"
        out.write(b"[")

    def piece(self, text: bytes) -> None:
        if text:
            self.out.write(self._lead)
            self.out.write(memoryview(text)[:-2])
            self._lead = b",\n"

    def file(self, path: str) -> None:
        """The objects a worker wrote to ``path``, copied without reading them whole."""
        size = os.path.getsize(path)
        if not size:
            return
        self.out.write(self._lead)
        with open(path, "rb") as handle:
            _copy(handle, self.out, size - 2)
        self._lead = b",\n"

    def close(self) -> None:
        self.out.write(b"\n]\n")


def _copy(source: IO[bytes], target: IO[bytes], count: int) -> None:
    """``count`` bytes of ``source`` onto ``target``: by the kernel where it can (no copy through
    this process: a sweep's export moves gigabytes), else through a buffer (a terminal, a
    target without a file descriptor), from where the kernel stopped."""
    target.flush()
    offset = source.tell()
    try:
        out, fd = target.fileno(), source.fileno()
        while count > 0:
            sent = os.sendfile(out, fd, offset, min(count, 1 << 30))
            if not sent:
                return
            offset += sent
            count -= sent
        return
    except (AttributeError, OSError, io.UnsupportedOperation):
        source.seek(offset)
    copy_bytes(source, target, count)


def export_run(run_dir: str, fmt: str, out: IO[bytes]) -> None:
    """One run's rows as CSV or JSON, streamed into ``out``."""
    text = RunText(fmt)
    if fmt == "csv":
        out.write(csv_line(CSV_HEADER).encode())
        for piece in text.pieces(run_dir):
            out.write(piece)
        return
    array = JsonArray(out)
    for piece in text.pieces(run_dir):
        array.piece(piece)
    array.close()


def _export_to_file(job: Tuple[str, str, str, str]) -> str:
    """A worker's part: one run's rows, with its name first, into a file of its own."""
    name, folder, fmt, spool = job
    text = RunText(fmt, run=name)
    handle, path = tempfile.mkstemp(prefix="run-", suffix="." + fmt, dir=spool)
    with os.fdopen(handle, "wb") as out:
        for piece in text.pieces(folder):
            out.write(piece)
    return path


def export_runs(root: str, runs: List[Tuple[str, str]], fmt: str, out: IO[bytes],
                spool_dir: Optional[str] = None) -> None:
    """The rows of every run below ``root`` as one CSV table or JSON array, a run's name first
    in each row; the runs are read in parallel and written in order."""
    spool = tempfile.mkdtemp(prefix="unitb-export-", dir=spool_dir)
    try:
        parts = (path for _name, path in over_runs(_export_to_file, root, runs, (fmt, spool)))
        array = None
        if fmt == "csv":
            out.write(csv_line(("run",) + CSV_HEADER).encode())
        else:
            array = JsonArray(out)
        for path in parts:
            if array is not None:
                array.file(path)
            else:
                with open(path, "rb") as handle:
                    _copy(handle, out, os.path.getsize(path))
            os.unlink(path)
        if array is not None:
            array.close()
    finally:
        shutil.rmtree(spool, ignore_errors=True)
