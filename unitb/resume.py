"""Set aside the orphaned steps of an interrupted run before the resumed run writes again.

After a crash between checkpoints, the steps written after the last checkpoint came from a
model state that no longer exists; the resumed run writes those steps again. A
``SessionLog.START``/``purge_step`` hides them only in TensorBoard's fast loader, and
``tf.summary`` has no purge at all (``shared/DESIGN.md``). So unitb rewrites the run: every
record with ``step <= resume_step`` is copied byte for byte, in order, into one compacted event
file (a run whose orphans sit at its end is copied as one range, so the cost is one read of
the run plus one sequential copy), and
the old files are *moved* (never deleted) into ``<folder>/.unitb-removed/<stamp>-resume-<S>/``
under names without ``tfevents``, which no TensorBoard reader looks at. ``unitb restore``
puts them back (:func:`restore`).

Only a real resume (a restored step ``S >= 1``) does this; a fresh run never touches another
run's files (see :mod:`unitb.runs`).

Crash safety: the compacted file is written under a name readers ignore and fsynced; a
journal naming every move is written before anything is renamed. A kill at any point leaves
every step up to ``S`` readable (at worst the orphans, or a second copy of the history, are
still visible), and the next start finishes or rolls back the job from the journal
(:func:`recover`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from unitb.reader import event_files, is_event_file
from unitb.records_io import split_at_step

JOURNAL = ".unitb-resume.json"
TMP_NAME = ".unitb-compact.tmp"
TRASH = ".unitb-removed"
MANIFEST = "manifest.json"
RESTORED_MANIFEST = "manifest.restored.json"


@dataclass(frozen=True)
class CleanUp:
    """What a resume set aside: ``dropped`` events from steps ``first..last``, kept in ``trash``."""

    dropped: int
    first: int
    last: int
    trash: str

    def describe(self, resume_step: int, folder: str) -> str:
        steps = f"step {self.first}" if self.first == self.last else f"steps {self.first}..{self.last}"
        return (f"resumed at step {resume_step}: moved {self.dropped} event(s) of {steps}, written after the "
                f"checkpoint by the interrupted run in {folder}, to {self.trash} (TensorBoard does not read it; "
                f"`unitb restore {folder}` puts them back)")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json(path: str, data: object) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _compacted_name(first_file: str, resume_step: int) -> str:
    """A name that sorts before every file a writer opened from now on can get.

    Readers order event files by name, i.e. by the timestamp after ``tfevents.``; a resumed
    writer opened in the same second as the old run's first file must still come after the
    compacted history, so the compacted file takes that timestamp minus one.
    """
    parts = os.path.basename(first_file).split(".")
    try:
        stamp = int(parts[3])
    except (IndexError, ValueError):
        stamp = int(os.path.getmtime(first_file))
    return f"events.out.tfevents.{max(0, stamp - 1):010d}.unitb-resumed-{max(resume_step, 0)}"


def removed_name(name: str) -> str:
    """The name an event file gets in the trash: without ``tfevents``, so no reader loads it."""
    return name.replace("tfevents", "removed-events") if is_event_file(name) else name + ".removed"


def _plan(files: Sequence[str], resume_step: int):
    """Per file, the byte ranges of records a resume keeps, and the orphans' count and steps."""
    plans, count, first, last = [], 0, None, None
    for path in files:
        keep, dropped, lo, hi = split_at_step(path, resume_step)
        plans.append((path, keep))
        if dropped:
            count += dropped
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
    return plans, count, int(first or 0), int(last or 0)


def _version_record_end(path: str) -> int:
    """End offset of the file's first record when it is the ``file_version`` header (the
    compacted file keeps the first file's header only), else 0."""
    from tensorboard.compat.proto import event_pb2

    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12:
            return 0
        length = int.from_bytes(head[:8], "little")
        payload = handle.read(length)
    try:
        return 12 + length + 4 if event_pb2.Event.FromString(payload).HasField("file_version") else 0
    except Exception:
        return 0


def _files(run_dir: str, exclude: Iterable[str]) -> List[str]:
    skip = {os.path.abspath(p) for p in exclude}
    return [p for p in event_files(run_dir) if os.path.abspath(p) not in skip]


def orphan_count(run_dir: str, resume_step: int, exclude: Sequence[str] = ()) -> int:
    """How many events in ``run_dir`` (outside ``exclude``) are past ``resume_step``."""
    return _plan(_files(run_dir, exclude), resume_step)[1]


def _check_step(resume_step: int) -> None:
    if isinstance(resume_step, bool) or not isinstance(resume_step, int) or resume_step < 1:
        raise ValueError(f"resume_step must be an int >= 1 (a real resume), got {resume_step!r}")


def truncate_run(run_dir: str, resume_step: int, exclude: Sequence[str] = ()) -> Optional[CleanUp]:
    """Set aside every event after ``resume_step`` in ``run_dir``; None when there was none.

    Call it before the resumed run opens its writer. A run with no orphans is left untouched.
    ``exclude``: event files a live writer already holds open (mmengine opens its writer
    before hooks run); they are left alone.
    """
    _check_step(resume_step)
    if not os.path.isdir(run_dir):
        return None
    recover(run_dir)
    files = _files(run_dir, exclude)
    return _rewrite(files, run_dir, run_dir, resume_step, carry=False)


def carry_history(previous_dir: str, new_dir: str, resume_step: int) -> Optional[CleanUp]:
    """Resume into a new folder (mmengine's ``work_dir/<timestamp>/vis_data``): copy the steps
    up to ``resume_step`` of ``previous_dir`` into ``new_dir`` and move ``previous_dir``'s event
    files to its trash, so TensorBoard shows one clean curve in ``new_dir``. None when
    ``previous_dir`` holds no event files."""
    _check_step(resume_step)
    recover(previous_dir)
    files = _files(previous_dir, ())
    if not files:
        return None
    return _rewrite(files, previous_dir, new_dir, resume_step, carry=True)


def _rewrite(files: List[str], source_dir: str, target_dir: str, resume_step: int,
             carry: bool) -> Optional[CleanUp]:
    if not files:
        return None
    plans, dropped, first, last = _plan(files, resume_step)
    if dropped == 0 and not carry:
        return None
    tmp = os.path.join(target_dir, TMP_NAME)
    with open(tmp, "wb") as out:
        for index, (path, keep) in enumerate(plans):
            skip = _version_record_end(path) if index else 0  # one file_version header, the first
            with open(path, "rb") as handle:
                for start, end in keep:  # whole records, copied as they are (CRCs included)
                    start = max(start, skip)
                    if end <= start:
                        continue
                    handle.seek(start)
                    remaining = end - start
                    while remaining:
                        chunk = handle.read(min(remaining, 8 << 20))
                        if not chunk:
                            break
                        out.write(chunk)
                        remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    trash = os.path.join(source_dir, TRASH, f"{stamp}-resume-{resume_step}")
    suffix = 1
    while os.path.exists(trash):
        suffix += 1
        trash = os.path.join(source_dir, TRASH, f"{stamp}-resume-{resume_step}-{suffix}")
    final = os.path.join(target_dir, _compacted_name(files[0], resume_step))
    moves = [[os.path.abspath(p), os.path.join(trash, removed_name(os.path.basename(p)))] for p in files]
    manifest = {"resume_step": resume_step, "dropped": dropped, "dropped_steps": [first, last],
                "written": os.path.abspath(final), "files": moves, "time": stamp}
    journal = os.path.join(source_dir, JOURNAL)
    _write_json(journal, {"tmp": os.path.abspath(tmp), "final": os.path.abspath(final), "trash": trash,
                          "manifest": manifest})
    _fsync_dir(source_dir)
    os.replace(tmp, final)
    _fsync_dir(target_dir)
    _finish(trash, moves, manifest)
    os.remove(journal)
    _fsync_dir(source_dir)
    return CleanUp(dropped, first, last, trash)


def _finish(trash: str, moves: List[List[str]], manifest: dict) -> None:
    os.makedirs(trash, exist_ok=True)
    for src, dst in moves:
        if os.path.exists(src):
            os.replace(src, dst)
    _fsync_dir(trash)
    _write_json(os.path.join(trash, MANIFEST), manifest)


def recover(folder: str) -> None:
    """Finish (or roll back) a clean-up that a crash interrupted in ``folder``."""
    journal_path = os.path.join(folder, JOURNAL)
    if not os.path.exists(journal_path):
        tmp = os.path.join(folder, TMP_NAME)
        if os.path.exists(tmp):
            os.remove(tmp)  # died before the journal: the old files are intact
        return
    try:
        with open(journal_path) as handle:
            plan = json.load(handle)
    except (OSError, ValueError):
        plan = None  # a torn journal was never complete: nothing was moved yet
    tmp = (plan or {}).get("tmp", os.path.join(folder, TMP_NAME))
    if plan is None or os.path.exists(tmp) or "manifest" not in plan:
        if os.path.exists(tmp):
            os.remove(tmp)  # the compacted file was never put in place: roll back
    else:
        _finish(plan["trash"], plan["manifest"]["files"], plan["manifest"])
    os.remove(journal_path)
    _fsync_dir(folder)


def removals(root: str) -> List[str]:
    """Trash folders below ``root`` whose files have not been put back, newest first."""
    found = []
    for current, dirs, files in os.walk(root):
        if os.path.basename(os.path.dirname(current)) == TRASH and MANIFEST in files:
            found.append(current)
    return sorted(found, key=lambda p: os.path.basename(p), reverse=True)


def restore(trash: str) -> List[str]:
    """Put the files of one trash folder back where they were and set aside the compacted
    file the resume wrote instead, so the folders read as before that resume (the resumed
    run's own files stay). Returns the restored paths."""
    with open(os.path.join(trash, MANIFEST)) as handle:
        manifest = json.load(handle)
    written = manifest.get("written")
    if written and os.path.exists(written):
        os.replace(written, os.path.join(trash, removed_name(os.path.basename(written))))
    restored = []
    for src, dst in manifest["files"]:
        if os.path.exists(dst) and not os.path.exists(src):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            os.replace(dst, src)
            restored.append(src)
    os.replace(os.path.join(trash, MANIFEST), os.path.join(trash, RESTORED_MANIFEST))
    return restored
