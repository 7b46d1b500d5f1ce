"""The embedded sweep storage, Optuna's journal file, kept readable when a write was torn.

A journal is a file of JSON records, one a line, that every agent appends to under a lock. A
process killed in the middle of an append, or a network file system's client, can leave half a
record at the end. Optuna then skips that tail while it stays last — a finished trial silently
looks as if it still runs — and the next record any agent appends is glued onto it, after which
no command can read the sweep. Here:

- a torn tail is found whenever the journal is opened and before every append (under the
  journal's lock), named (file and byte) in one warning, and set aside: its bytes are kept beside
  the journal in ``<journal>.torn-<byte>`` and the file ends at its last whole record;
- a torn record in the middle (left by a writer that did not mend the tail) is an error naming
  the file and the line, and ``unitb sweep repair`` sets such lines aside the same way.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Generator, List, Tuple

from unitb.notices import default_warn

_TAIL_WINDOW = 1 << 20  # a record is far smaller: the last line is found within this


class TornJournal(ValueError):
    """A record in the middle of a sweep's journal is not whole: the sweep cannot be read past it."""


def _is_record(line: bytes) -> bool:
    if not line.endswith(b"\n"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _torn_tail(path: str) -> int:
    """The byte where a torn last record starts, or -1 when the journal ends with a whole one."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return -1
        start = max(0, size - _TAIL_WINDOW)
        handle.seek(start)
        tail = handle.read()
    body = tail[:-1] if tail.endswith(b"\n") else tail
    cut = body.rfind(b"\n")
    if cut < 0 and start > 0:
        return -1  # a last line longer than the window: not one of Optuna's records, leave it to the reader
    line_start = start + cut + 1
    return -1 if _is_record(tail[cut + 1:]) else line_start


def _ends_a_line(path: str) -> bool:
    """Whether the journal is empty or ends with a newline (one byte read: this runs at every append)."""
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except FileNotFoundError:
        return True


def set_aside(path: str, start: int, end: int) -> str:
    """Copy bytes ``start``..``end`` of the journal beside it and cut them out of it; returns the copy's path."""
    keep = f"{path}.torn-{start}"
    with open(path, "rb") as handle:
        handle.seek(start)
        torn = handle.read(end - start)
        handle.seek(end)
        rest = handle.read()
    with open(keep, "wb") as out:
        out.write(torn)
        out.flush()
        os.fsync(out.fileno())
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(rest)
        handle.truncate(start + len(rest))
        handle.flush()
        os.fsync(handle.fileno())
    return keep


def mend_tail(path: str) -> bool:
    """Set a torn last record aside (the caller holds the journal's lock); whether there was one."""
    try:
        start = _torn_tail(path)
    except FileNotFoundError:
        return False
    if start < 0:
        return False
    size = os.path.getsize(path)
    keep = set_aside(path, start, size)
    default_warn(f"unitb sweep: {path} ended in a torn record ({size - start} bytes from byte {start}: what a "
                 f"process killed mid-write or a network file system can leave); set aside in {keep}. Every whole "
                 "record is kept; a trial whose end was in it shows as running until its agent is found dead, "
                 "and then runs again")
    return True


def torn_lines(path: str) -> List[Tuple[int, int, int]]:
    """Every line that is not a whole record, but the last one: ``(line number, first byte, end byte)``."""
    found, offset = [], 0
    with open(path, "rb") as handle:
        lines = list(handle)
    for number, line in enumerate(lines, start=1):
        if number < len(lines) and not _is_record(line):
            found.append((number, offset, offset + len(line)))
        offset += len(line)
    return found


def repair(path: str) -> List[str]:
    """Set aside every torn record of the journal (its last one included); the copies' paths."""
    kept = []
    for _number, start, end in reversed(torn_lines(path)):
        kept.append(set_aside(path, start, end))
    start = _torn_tail(path)
    if start >= 0:
        kept.append(set_aside(path, start, os.path.getsize(path)))
    return kept


def repair_locked(path: str) -> List[str]:
    """:func:`repair` under the journal's own lock, so no agent appends meanwhile."""
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    with get_lock_file(JournalFileSymlinkLock(path)):
        return repair(path)


def backend(path: str, ident: str = ""):
    """Optuna's journal file backend for ``path``, mending torn tails and naming torn records."""
    path = os.path.abspath(path)  # named in messages, and the same file whatever the working folder
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal._file import get_lock_file

    class CheckedJournalFile(JournalFileBackend):
        def __init__(self) -> None:
            super().__init__(path)
            if os.path.exists(path):
                with get_lock_file(self._lock):
                    mend_tail(path)

        def read_logs(self, log_number_from: int) -> Generator[Dict[str, Any], None, None]:
            try:
                yield from super().read_logs(log_number_from)
            except ValueError as exc:  # json's decode error is one
                torn = torn_lines(path)
                if not torn:
                    raise
                number, start, _end = torn[0]
                raise TornJournal(
                    f"{path}: line {number} (from byte {start}) is not a whole record and records follow it "
                    f"({type(exc).__name__}: {exc}), so the sweep cannot be read past it. `unitb sweep repair "
                    f"{ident or '<sweep>'}` sets such lines aside beside the journal and keeps every whole record; "
                    "then check the trials with `unitb sweep status`") from None

        def append_logs(self, logs: List[Dict[str, Any]]) -> None:
            text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
            with get_lock_file(self._lock):
                if not _ends_a_line(path):  # a killed writer's torn record is never glued to this one
                    mend_tail(path)
                with open(path, "ab") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())

    return CheckedJournalFile()
