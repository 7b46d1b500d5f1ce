"""Set aside the orphaned steps of an interrupted run before the resumed run writes again.

After a crash between checkpoints, the steps written after the last checkpoint came from a
model state that no longer exists; the resumed run writes those steps again. A
``SessionLog.START``/``purge_step`` hides them only in TensorBoard's fast loader, and
``tf.summary`` has no purge at all. So unitb rewrites the run: every
record with ``step <= resume_step`` is copied byte for byte, in order, into one compacted event
file (a run whose orphans sit at its end is copied as one range, so the cost is one read of
the run plus one sequential copy), and
the old files are *moved* (never deleted) into ``<folder>/.unitb-removed/<stamp>-resume-<S>/``
under names without ``tfevents``, which no TensorBoard reader looks at. ``unitb restore``
puts them back (:func:`restore`).

Only a real resume (a restored step ``S >= 1``) does this; a fresh run never touches another
run's files (see :mod:`unitb.folder.versions`).

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

from unitb.files.copying import copy_bytes
from unitb.files import json_files
from unitb.files import safe_paths
from unitb.folder import step_index
from unitb.files.names import COMPACT_TMP, REMOVED, RESUME_JOURNAL, RESUMED_MARK
from unitb.notices import default_warn
from unitb.files.event_files import event_file_name, event_files, is_event_file
from unitb.read.records import first_event, split_at_step

JOURNAL, TMP_NAME, TRASH = RESUME_JOURNAL, COMPACT_TMP, REMOVED
MANIFEST = "manifest.json"
RESTORED_MANIFEST = "manifest.restored.json"
__all__ = ["CleanUp", "truncate_run", "nothing_after", "carry_history", "recover", "removals", "restore",
           "removed_name", "split_at_step"]


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
    """The journal and the manifest: on disk before they are renamed into place."""
    json_files.write(path, data, durable=True, indent=1)


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
    return event_file_name(stamp - 1, f"{RESUMED_MARK}{max(resume_step, 0)}")


def _is_compacted_name(name: str) -> bool:
    return is_event_file(name) and RESUMED_MARK in name


def _near(folder: str) -> str:
    """The widest folder a clean-up of ``folder`` writes in: its grandparent (a resume that
    carries history writes into a sibling ``<timestamp>/vis_data``; anything else stays in
    ``folder``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(folder)))


def _recorded_moves(folder: str, trash: str, moves: object) -> List[Tuple[str, str]]:
    """The moves a journal or manifest records, rebuilt from their file names alone: every
    source is an event file directly in ``folder``, every copy a file directly in ``trash``.
    The folders written in the record are not trusted (a manifest pulled from a shared store,
    or written on another machine, names paths that are not this folder's). Raises
    :class:`~unitb.files.safe_paths.UnsafePath` for a name that is not a plain event-file name."""
    if not isinstance(moves, list):
        raise safe_paths.UnsafePath("no list of moves")
    rebuilt = []
    for move in moves:
        if not (isinstance(move, (list, tuple)) and len(move) == 2 and all(isinstance(p, str) for p in move)):
            raise safe_paths.UnsafePath(f"a move that is not a pair of paths: {move!r}")
        src, dst = (p.replace("\\", "/").rsplit("/", 1)[-1] for p in move)
        if not (safe_paths.plain_name(src) and safe_paths.plain_name(dst) and is_event_file(src)):
            raise safe_paths.UnsafePath(f"names a file that is not an event file of the run: {move!r}")
        rebuilt.append((os.path.join(folder, src), os.path.join(trash, dst)))
    return rebuilt


def _recorded_trash(folder: str, trash: object) -> str:
    """The trash folder a journal names, rebuilt below ``folder/.unitb-removed``."""
    name = trash.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(trash, str) else None
    if name is None or not safe_paths.plain_name(name) or name == TRASH:
        raise safe_paths.UnsafePath(f"names a trash folder that is not below {TRASH}: {trash!r}")
    return os.path.join(folder, TRASH, name)


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
    event, end = first_event(path)
    return end if event is not None and event.HasField("file_version") else 0


def _files(run_dir: str, exclude: Iterable[str]) -> List[str]:
    skip = {os.path.abspath(p) for p in exclude}
    return [p for p in event_files(run_dir) if os.path.abspath(p) not in skip]


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
    if nothing_after(files, resume_step):
        return None
    return _rewrite(files, run_dir, run_dir, resume_step, carry=False)


def nothing_after(files: Sequence[str], resume_step: int) -> bool:
    """True when the step index vouches that no file holds a record after ``resume_step``
    (reading only what each file gained since its last index update); False when it cannot
    say for some file, which is then read whole (:func:`_plan`)."""
    for path in files:
        highest = step_index.highest_step(path)
        if highest is None or highest > resume_step:
            return False
    return True


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
                    copy_bytes(handle, out, end - start)
        out.flush()
        os.fsync(out.fileno())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    trash = os.path.join(source_dir, TRASH, f"{stamp}-resume-{resume_step}")
    suffix = 1
    while os.path.exists(trash):
        suffix += 1
        trash = os.path.join(source_dir, TRASH, f"{stamp}-resume-{resume_step}-{suffix}")
    final = os.path.join(target_dir, _compacted_name(files[0], resume_step))
    # Moves are recorded by file name (sources in source_dir, copies in the trash): the record
    # stays valid when the run is pulled to another machine, and names nothing else.
    names = [[os.path.basename(p), removed_name(os.path.basename(p))] for p in files]
    moves = _recorded_moves(source_dir, trash, names)
    manifest = {"resume_step": resume_step, "dropped": dropped, "dropped_steps": [first, last],
                "written": os.path.abspath(final), "files": names, "time": stamp}
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


def _finish(trash: str, moves: Sequence[Tuple[str, str]], manifest: dict) -> None:
    os.makedirs(trash, exist_ok=True)
    for src, dst in moves:
        if os.path.exists(src):
            os.replace(src, dst)
    _fsync_dir(trash)
    _write_json(os.path.join(trash, MANIFEST), manifest)


def recover(folder: str, warn=None) -> None:
    """Finish (or roll back) a clean-up that a crash interrupted in ``folder``.

    The journal is read as untrusted input: the moves it names are rebuilt from file names
    inside ``folder`` (:func:`_recorded_moves`), and a temporary file is removed only under
    its own name near ``folder``. A journal that names anything else is set aside as
    ``.unitb-resume.json.refused`` with one warning, and nothing is moved."""
    journal_path = os.path.join(folder, JOURNAL)
    if not os.path.exists(journal_path):
        tmp = os.path.join(folder, TMP_NAME)
        if os.path.isfile(tmp) and not os.path.islink(tmp):
            os.remove(tmp)  # died before the journal: the old files are intact
        return
    try:
        with open(journal_path) as handle:
            plan = json.load(handle)
    except (OSError, ValueError):
        plan = None  # a torn journal was never complete: nothing was moved yet
    if not isinstance(plan, dict):
        plan = None
    tmp = (plan or {}).get("tmp", os.path.join(folder, TMP_NAME))
    if not (isinstance(tmp, str) and os.path.basename(tmp) == TMP_NAME and safe_paths.within(tmp, _near(folder))):
        tmp = os.path.join(folder, TMP_NAME)  # the only temporary file a clean-up of this folder makes here
    try:
        if plan is None or os.path.exists(tmp) or "manifest" not in plan:
            if os.path.isfile(tmp) and not os.path.islink(tmp):
                os.remove(tmp)  # the compacted file was never put in place: roll back
        else:
            trash = _recorded_trash(folder, plan.get("trash"))
            moves = _recorded_moves(folder, trash, plan["manifest"].get("files"))
            _finish(trash, moves, plan["manifest"])
    except safe_paths.UnsafePath as exc:
        os.replace(journal_path, journal_path + ".refused")
        (warn or default_warn)(f"unitb: ignored the interrupted clean-up journal in {folder}: it {exc}; nothing "
                               f"was moved, and it is kept as {JOURNAL}.refused")
        return
    os.remove(journal_path)
    _fsync_dir(folder)


def removals(root: str) -> List[str]:
    """Trash folders below ``root`` whose files have not been put back, newest first."""
    found = []
    for current, _dirs, files in os.walk(root):
        if os.path.basename(os.path.dirname(current)) == TRASH and MANIFEST in files:
            found.append(current)
    return sorted(found, key=lambda p: os.path.basename(p), reverse=True)


def restore(trash: str) -> List[str]:
    """Put the files of one trash folder back where they were and set aside the compacted
    file the resume wrote instead, so the folders read as before that resume (the resumed
    run's own files stay). Returns the restored paths.

    The manifest may come from a store or another machine: files go back only into the run
    folder that holds this trash, under their own event-file names, and the compacted file
    is set aside only when it has a compacted file's name near that folder. Raises
    :class:`~unitb.files.safe_paths.UnsafePath` (nothing moved) for a manifest that names
    anything else."""
    trash = os.path.abspath(trash)
    folder = os.path.dirname(os.path.dirname(trash))
    with open(os.path.join(trash, MANIFEST)) as handle:
        manifest = json.load(handle)
    moves = _recorded_moves(folder, trash, manifest.get("files") if isinstance(manifest, dict) else None)
    written = manifest.get("written")
    if isinstance(written, str) and _is_compacted_name(os.path.basename(written)) and \
            safe_paths.within(written, _near(folder)) and os.path.isfile(written) and not os.path.islink(written):
        os.replace(written, os.path.join(trash, removed_name(os.path.basename(written))))
    restored = []
    for src, dst in moves:
        if os.path.exists(dst) and not os.path.exists(src):
            os.replace(dst, src)
            restored.append(src)
    os.replace(os.path.join(trash, MANIFEST), os.path.join(trash, RESTORED_MANIFEST))
    return restored
