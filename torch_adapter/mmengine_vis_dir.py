"""Where an mmengine run's TensorBoard events go: the folder rules of :mod:`unitb.folder.versions` and
:mod:`unitb.folder.set_aside` applied to the folder mmengine chose, and the mirrors to ``out_dir``.

mmengine opens ``TensorboardVisBackend``'s writer itself, in ``work_dir/<timestamp>/vis_data``
(or a fixed ``save_dir``), before any hook versions. So, unlike the other entry points, the hook
cannot pick the folder first; it adjusts afterwards:

- a **fresh** run whose folder holds another run (a fixed ``save_dir``; here or, with
  ``out_dir``, in the store), or one that another run started at the same moment claimed,
  moves itself — writer and all — to the next free version of the folder;
- a **resumed** run into a fixed folder sets aside the steps written after the checkpoint;
  into a new ``<timestamp>/vis_data`` it carries the previous timestamp folder's steps up
  to the checkpoint over (fetched from ``out_dir`` first when this machine has no copy).
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Callable, List, Optional, Set

from torch_adapter import mmengine_internals
from torch_adapter.sink import SummaryWriterSink
from unitb.folder import claim
from unitb.read import run_reader
from unitb.folder import set_aside
from unitb.folder import versions
from unitb.folder import step_index
from unitb.files import storage
from unitb.store.mirror import Mirror
from unitb.store.run_location import StoreOptions, mirror_folder, newest_earlier_folder, store_versions

OWNER = "EnhancedTensorBoardHook"


class MMEngineVisDir:
    """The hook's run folder and its mirrors (``out_dir``). ``warn``/``info``: mmengine's logger."""

    def __init__(self, out_dir: Optional[str], store: StoreOptions, warn: Callable[[str], None],
                 info: Callable[[str], None], resume_wait: float = 60.0) -> None:
        self.out_dir = out_dir
        self.resume_wait = resume_wait
        self.store = store
        self._warn, self._info = warn, info
        self.mirrors: List[Mirror] = []

    # ------------------------------------------------------------------ opening
    def open_sink(self, runner) -> SummaryWriterSink:
        """The TensorboardVisBackend's writer (or our own at the same place), in a folder
        that holds no other run on a fresh start, with the history of an interrupted run
        cleaned up on a set_aside."""
        backend = mmengine_internals.tensorboard_backend(runner)
        writer = backend.experiment if backend is not None else None
        if writer is not None:
            sink = SummaryWriterSink(writer, owns_writer=False)
        else:
            log_dir = osp.join(runner.log_dir, "vis_data")
            self._warn(f"{OWNER}: no TensorboardVisBackend in the visualizer; writing to its own SummaryWriter in "
                       f"{log_dir}. Add dict(type='TensorboardVisBackend') to vis_backends to get mmengine's "
                       "LoggerHook scalars in the same run.")
            sink = SummaryWriterSink.open(log_dir)
        if runner.iter <= 0:
            sink = self._keep_other_runs(sink, backend, runner)
        else:
            if self.out_dir is not None:
                self._fetch_previous(runner, sink.logdir)
            self._continue_run(runner, sink)
        return sink

    def start_mirrors(self, runner, sink: SummaryWriterSink) -> Optional[Mirror]:
        """Start uploading to ``out_dir`` (the run's folder, and any folder fetched for a
        resume, whose clean-up the store must follow); the run folder's mirror, or None."""
        mirror = self._mirror(runner, sink.logdir) if self.out_dir is not None else None
        for each in self.mirrors:
            each.start()
        if mirror is not None:
            self._info(f"{OWNER}: uploading {sink.logdir} to {mirror.url} in the background")
        return mirror

    def close(self) -> None:
        """The last uploads (each bounded by ``upload_timeout``)."""
        for mirror in self.mirrors:
            mirror.close()
        self.mirrors = []

    # ------------------------------------------------------------------ fresh runs
    def _versions_in_store(self, runner, folder: str) -> Set[int]:
        """Versions of ``folder`` that hold a run in ``out_dir`` (a fixed ``save_dir`` another
        machine already wrote to); none when there is no ``out_dir`` or the store does not answer."""
        if self.out_dir is None:
            return set()
        try:
            return store_versions(self._remote_for(runner, folder), self.store.storage_options)
        except Exception as exc:
            self._warn(f"{OWNER}: could not list {self.out_dir} ({type(exc).__name__}: {exc}); the run folder is "
                       "chosen from this machine's files alone")
            return set()

    def _keep_other_runs(self, sink: SummaryWriterSink, backend, runner) -> SummaryWriterSink:
        """A fresh run whose folder is taken moves itself, writer and all, to the next free
        version of the folder: nothing is rewritten."""
        in_store = self._versions_in_store(runner, sink.logdir)
        own = sink.open_files()
        if not in_store and claim.claim_folder(sink.logdir, own_files=own):
            return sink  # no other run there, and none started at the same moment claimed it

        old_dir = sink.logdir
        taken = in_store | versions.taken_versions(old_dir) | {1}
        new_dir = versions.claim_from(old_dir, max(taken) + 1)
        where = f"{old_dir} ({self._remote_for(runner, old_dir)} in the store)" if in_store else old_dir
        others = in_store or run_reader.other_event_files(old_dir, own)
        why = "already holds another run" if others else "was claimed by another run started at the same moment"
        self._warn(f"{OWNER}: {where} {why}; this fresh run (step 0) writes to {new_dir} and leaves it untouched. "
                   "Resume from a checkpoint (resume=True) to continue that run instead.")
        os.makedirs(new_dir, exist_ok=True)
        moved = SummaryWriterSink.open(new_dir)
        writer = moved.writer
        sink.writer.close()
        for path in own:  # what this run's writer already wrote (mmengine's config text) moves with it
            if osp.exists(path):
                os.replace(path, osp.join(new_dir, osp.basename(path)))
        if mmengine_internals.writes_through(backend, sink.writer):
            mmengine_internals.repoint(backend, writer, new_dir)  # LoggerHook's scalars follow
        moved.owns_writer = sink.owns_writer
        return moved

    # ------------------------------------------------------------------ resumed runs
    def _continue_run(self, runner, sink: SummaryWriterSink) -> None:
        """On ``resume=True`` at step S: into a fixed folder, set aside the steps the interrupted
        run wrote after S; into mmengine's new ``work_dir/<timestamp>/vis_data``, carry the
        previous timestamp folder's steps up to S over, so one clean curve shows."""
        step = int(runner.iter)
        if run_reader.other_event_files(sink.logdir, sink.open_files()):
            claim.claim_for_resume(sink.logdir, self.resume_wait, OWNER)  # no live writer of the old run there
            cleanup = set_aside.truncate_run(sink.logdir, step, exclude=sink.open_files())
            where = sink.logdir
        else:
            previous = previous_timestamp_folder(sink.logdir)
            cleanup = None
            if previous:
                claim.claim_for_resume(previous, self.resume_wait, OWNER)  # the interrupted job has let go
                try:
                    cleanup = set_aside.carry_history(previous, sink.logdir, step)
                finally:
                    claim.release(previous)  # its event files moved on with the history
            where = previous
            if cleanup is not None:
                self._info(f"{OWNER}: resumed at step {step}: steps up to {step} of {previous} continue in "
                           f"{sink.logdir}")
        if cleanup is not None:
            self._warn(f"{OWNER}: {cleanup.describe(step, where)}")

    def _fetch_previous(self, runner, vis_dir: str) -> None:
        """A resume on a machine without the interrupted run's folder: fetch the newest earlier
        ``<timestamp>/vis_data`` from the store, so its steps up to S carry over as they do
        locally, and the store's copy gets the same clean-up (through that folder's mirror)."""
        stamp_dir = osp.dirname(osp.abspath(vis_dir))
        leaf = osp.basename(osp.abspath(vis_dir))
        work_dir = osp.abspath(runner.work_dir)
        if osp.dirname(stamp_dir) != work_dir:
            return
        try:
            parent = storage.join(self.out_dir, osp.basename(work_dir))
            name = newest_earlier_folder(parent, osp.basename(stamp_dir), leaf, self.store.storage_options)
            if name is None:
                return
            fetched = self._mirror(runner, osp.join(work_dir, name, leaf)).pull()
            if fetched:
                self._info(f"{OWNER}: fetched {fetched} file(s) of {storage.join(parent, name, leaf)} to continue "
                           "its curves")
        except Exception as exc:
            self._warn(f"{OWNER}: could not fetch the interrupted run from {self.out_dir} ({type(exc).__name__}: "
                       f"{exc}); its steps stay in the store as they are")

    # ------------------------------------------------------------------ the store
    def _remote_for(self, runner, folder: str) -> str:
        """``out_dir/<work_dir name>/<path below work_dir>`` (mmengine LoggerHook's layout), or
        ``out_dir/<folder name>`` for a ``save_dir`` outside the work_dir."""
        work_dir = osp.abspath(runner.work_dir)
        folder = osp.abspath(folder)
        if folder.startswith(work_dir + os.sep):
            return storage.join(self.out_dir, osp.relpath(folder, osp.dirname(work_dir)))
        return storage.join(self.out_dir, osp.basename(folder))

    def _mirror(self, runner, folder: str) -> Mirror:
        mirror = mirror_folder(folder, self._remote_for(runner, folder), self.store, self._warn, self._info, OWNER)
        self.mirrors.append(mirror)
        return mirror


def holds_training_steps(folder: str) -> bool:
    """Whether ``folder``'s event files hold a record past step 0. A start that failed before
    training (a checkpoint that would not load) leaves a folder with only the config text at
    step 0: it is not the run a resume continues."""
    return any(step_index.last_step(path) >= 1 for path in run_reader.event_files(folder))


def previous_timestamp_folder(vis_dir: str) -> Optional[str]:
    """``work_dir/<earlier timestamp>/vis_data`` that holds training steps, the newest before
    ``vis_dir``'s own timestamp (mmengine names them ``%Y%m%d_%H%M%S``, which sort by time)."""
    stamp_dir = osp.dirname(osp.abspath(vis_dir))
    work_dir, stamp = osp.dirname(stamp_dir), osp.basename(stamp_dir)
    leaf = osp.basename(osp.abspath(vis_dir))
    try:
        names = sorted(os.listdir(work_dir))
    except OSError:
        return None
    for name in reversed(names):
        candidate = osp.join(work_dir, name, leaf)
        if name < stamp and osp.isdir(candidate):
            set_aside.recover(candidate)  # a clean-up interrupted by a kill is finished first
            if holds_training_steps(candidate):
                return candidate
    return None
