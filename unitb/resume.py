"""Remove orphaned steps from a run before a resumed run writes into it.

After a crash between checkpoints, the steps written after the last checkpoint were
produced by a model state that no longer exists; the resumed run writes those steps again.
A ``SessionLog.START``/``purge_step`` hides them only in TensorBoard's fast loader, and
``tf.summary`` has no purge at all (``shared/DESIGN.md``). So unitb rewrites the run:
every event with ``step <= resume_step`` is copied, in order, into one compacted event
file; the old files are then removed. Every reader then sees each step once.

Crash safety: the compacted file is written under a name readers ignore, fsynced, and a
journal is written before anything is renamed or removed. If the process dies during the
clean-up, the run stays readable (at worst the orphans are still visible) and the next
start finishes the job from the journal. Nothing at or before ``resume_step`` is dropped.
"""
from __future__ import annotations

import json
import os
from typing import List, Sequence

from unitb.reader import event_files, iter_events

JOURNAL = ".unitb-resume.json"
TMP_NAME = ".unitb-compact.tmp"


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


def _compacted_name(first_file: str, resume_step: int) -> str:
    """A name that sorts before every file a writer opened from now on can get.

    Readers order event files by name, i.e. by the timestamp after ``tfevents.``; a
    resumed writer opened in the same second as the old run's first file must still come
    after the compacted history, so the compacted file takes that timestamp minus one.
    """
    parts = os.path.basename(first_file).split(".")
    try:
        stamp = int(parts[3])
    except (IndexError, ValueError):
        stamp = int(os.path.getmtime(first_file))
    return f"events.out.tfevents.{max(0, stamp - 1):010d}.unitb-resumed-{max(resume_step, 0)}"


def recover(run_dir: str) -> None:
    """Finish (or roll back) a clean-up that a crash interrupted."""
    journal_path = os.path.join(run_dir, JOURNAL)
    if not os.path.exists(journal_path):
        tmp = os.path.join(run_dir, TMP_NAME)
        if os.path.exists(tmp):
            os.remove(tmp)  # died before the journal: old files are intact
        return
    try:
        with open(journal_path) as handle:
            plan = json.load(handle)
    except (OSError, ValueError):
        plan = None
    tmp = os.path.join(run_dir, TMP_NAME)
    if plan is None or os.path.exists(tmp):
        # The compacted file was never put in place: the old files are still complete.
        if os.path.exists(tmp):
            os.remove(tmp)
    else:
        for name in plan.get("old", []):
            path = os.path.join(run_dir, name)
            if os.path.exists(path):
                os.remove(path)
    os.remove(journal_path)
    _fsync_dir(run_dir)


def orphan_count(run_dir: str, resume_step: int, exclude: Sequence[str] = ()) -> int:
    """How many events in ``run_dir`` (outside ``exclude``) are past ``resume_step``."""
    return sum(1 for path in _files(run_dir, exclude) for event in iter_events(path)
               if event.step > resume_step)


def _files(run_dir: str, exclude: Sequence[str]) -> List[str]:
    skip = {os.path.abspath(p) for p in exclude}
    return [p for p in event_files(run_dir) if os.path.abspath(p) not in skip]


def truncate_run(run_dir: str, resume_step: int, exclude: Sequence[str] = ()) -> int:
    """Drop every event after ``resume_step`` from ``run_dir``; return how many were dropped.

    Call it before the resumed run opens its writer. A run with no orphans is left
    untouched (no rewrite, no cost beyond one read). ``resume_step=-1`` drops everything
    (a restart from scratch over an old run: even its step-0 records are written again).
    ``exclude``: event files a live writer already holds open (mmengine opens its writer
    before hooks run); they are left alone.
    """
    if resume_step < -1:
        raise ValueError(f"resume_step must be >= -1, got {resume_step}")
    if not os.path.isdir(run_dir):
        return 0
    recover(run_dir)
    files = _files(run_dir, exclude)
    dropped = orphan_count(run_dir, resume_step, exclude)
    if not files or dropped == 0:
        return 0
    from tensorboard.summary.writer.record_writer import RecordWriter

    tmp = os.path.join(run_dir, TMP_NAME)
    with open(tmp, "wb") as handle:
        writer = RecordWriter(handle)
        wrote_version = False
        for path in files:
            for event in iter_events(path):
                if event.step > resume_step:
                    continue
                if event.HasField("file_version"):
                    if wrote_version:
                        continue
                    wrote_version = True
                writer.write(event.SerializeToString())
        handle.flush()
        os.fsync(handle.fileno())
    old: List[str] = [os.path.basename(p) for p in files]
    final = os.path.join(run_dir, _compacted_name(files[0], resume_step))
    journal = os.path.join(run_dir, JOURNAL)
    with open(journal, "w") as handle:
        json.dump({"old": old, "final": os.path.basename(final), "resume_step": resume_step}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(run_dir)
    os.replace(tmp, final)
    _fsync_dir(run_dir)
    for name in old:
        path = os.path.join(run_dir, name)
        if os.path.exists(path) and path != final:
            os.remove(path)
    os.remove(journal)
    _fsync_dir(run_dir)
    return dropped
