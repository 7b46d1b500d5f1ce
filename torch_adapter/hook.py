"""``EnhancedTensorBoardHook``: the mmengine/mmpose entry point of unitb.

In a config::

    custom_imports = dict(imports=['torch_adapter'], allow_failed_imports=False)
    custom_hooks = [dict(type='EnhancedTensorBoardHook')]
    visualizer = dict(type='Visualizer', vis_backends=[dict(type='TensorboardVisBackend')])

It writes the canonical unitb tags into the same event file as mmengine's LoggerHook
(through ``TensorboardVisBackend``'s SummaryWriter), at the global step = optimizer
updates completed (``runner.iter + 1`` after a training iteration; validation at the
step it ran after). Every failure becomes one warning through ``print_log``; nothing is
raised into training. Only the main process writes; other ranks do no logging work.
"""
from __future__ import annotations

import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Set, Union

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from torch_adapter import images as image_utils
from torch_adapter import measure
from torch_adapter.session import TorchSession
from torch_adapter.sink import SummaryWriterSink
from unitb import claim, reader, resume, runs, storage
from unitb.mirror import Mirror
from unitb.options import LogOptions
from unitb.remote_run import StoreOptions, mirror_folder, newest_earlier_folder, store_versions

DATA_BATCH = Optional[Union[dict, tuple, list]]


def _warn(message: str) -> None:
    print_log(message, logger="current", level=30)  # WARNING: the user can act on it


def _info(message: str) -> None:
    print_log(message, logger="current")


@HOOKS.register_module(force=True)
class EnhancedTensorBoardHook(Hook):
    """Gradient norms, weight histograms, validation metrics, images, learning rates, model
    statistics and losses in the unitb schema. Parameters and defaults follow seeds 000/001;
    see :class:`unitb.options.LogOptions` for the full list."""

    priority = "VERY_LOW"

    def __init__(self, backend_args: Optional[dict] = None, skeleton: Optional[Sequence[Sequence[int]]] = None,
                 keep_mmengine_scalars: bool = False, out_dir: Optional[str] = None, **kwargs) -> None:
        if "spool_dir" in kwargs:
            raise ValueError("EnhancedTensorBoardHook has no spool_dir: it uploads mmengine's own folder "
                             "(work_dir/<timestamp>/vis_data) to out_dir")
        if "storage_options" in kwargs:
            raise ValueError("EnhancedTensorBoardHook takes the store's options as backend_args (as mmengine's "
                             "LoggerHook does), not storage_options")
        if backend_args is not None and not isinstance(backend_args, dict):
            raise ValueError(f"backend_args must be a dict or None, got {backend_args!r}")
        kwargs["storage_options"] = backend_args
        self.store = StoreOptions.pop_from(kwargs)
        self.options = LogOptions.from_kwargs("EnhancedTensorBoardHook", kwargs)
        # As in mmengine's LoggerHook: ``out_dir`` (a URL such as s3://bucket/runs, or a
        # folder) receives ``<work_dir name>/<timestamp>/vis_data``; ``backend_args`` are the
        # store's options (endpoint_url, key, secret, …: fsspec storage options). The event
        # files are written locally as always and uploaded in the background (unitb.mirror).
        self.backend_args = backend_args
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise ValueError(f"out_dir must be a URL, a folder or None, got {out_dir!r}")
        self.out_dir = None if out_dir is None else storage.check_location(
            out_dir, self.store.storage_options, "EnhancedTensorBoardHook")
        self._mirrors: List[Mirror] = []
        self.skeleton = [tuple(pair) for pair in skeleton] if skeleton else None
        if not isinstance(keep_mmengine_scalars, bool):
            raise ValueError(f"keep_mmengine_scalars must be True or False, got {keep_mmengine_scalars!r}")
        # mmengine's LoggerHook writes its own scalars (loss, lr, time, data_time, memory, val
        # metrics at the epoch index...) into the same TensorBoard writer; unitb writes all of
        # it in the schema, so by default they stay out of TensorBoard (scalars.json and the
        # console log keep them).
        self.keep_mmengine_scalars = keep_mmengine_scalars
        self._iter_end: Optional[float] = None
        self.session: Optional[TorchSession] = None
        self._first_batch: Optional[Dict[str, object]] = None
        self._val_cache: List[image_utils.ImageBatch] = []
        self._graph_done = False

    # ------------------------------------------------------------------ set-up
    def _open_sink(self, runner) -> SummaryWriterSink:
        """The TensorboardVisBackend's writer (or our own at the same place), in a folder
        that holds no other run on a fresh start, with the history of an interrupted run
        cleaned up on a resume (:mod:`unitb.runs`, :mod:`unitb.resume`)."""
        backend = None
        try:
            backend = runner.visualizer.get_backend("TensorboardVisBackend")
        except Exception:
            backend = None
        writer = backend.experiment if backend is not None else None
        if writer is not None:
            sink = SummaryWriterSink(writer, owns_writer=False)
        else:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = osp.join(runner.log_dir, "vis_data")
            _warn("EnhancedTensorBoardHook: no TensorboardVisBackend in the visualizer; writing to its own "
                  f"SummaryWriter in {log_dir}. Add dict(type='TensorboardVisBackend') to vis_backends to get "
                  "mmengine's LoggerHook scalars in the same run.")
            sink = SummaryWriterSink(SummaryWriter(log_dir), owns_writer=True)
        if runner.iter <= 0:
            sink = self._keep_other_runs(sink, backend, runner)
        else:
            if self.out_dir is not None:
                self._fetch_previous(runner, sink.logdir)
            self._continue_run(runner, sink)
        if backend is not None and not self.keep_mmengine_scalars:
            _schema_only(backend)
        print_log(f"EnhancedTensorBoardHook: writing into {sink.logdir}", logger="current")
        return sink

    @staticmethod
    def _other_files(sink: SummaryWriterSink) -> List[str]:
        own = {osp.abspath(f) for f in sink.open_files()}
        return [f for f in reader.event_files(sink.logdir) if osp.abspath(f) not in own]

    def _versions_in_store(self, runner, folder: str) -> Set[int]:
        """Versions of ``folder`` that hold a run in ``out_dir`` (a fixed ``save_dir`` another
        machine already wrote to); none when there is no ``out_dir`` or the store does not answer."""
        if self.out_dir is None:
            return set()
        try:
            return store_versions(self._remote_for(runner, folder), self.store.storage_options)
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: could not list {self.out_dir} ({type(exc).__name__}: {exc}); "
                  "the run folder is chosen from this machine's files alone")
            return set()

    def _keep_other_runs(self, sink: SummaryWriterSink, backend, runner) -> SummaryWriterSink:
        """A fresh run whose folder already holds another run (a fixed ``save_dir``, here or in
        ``out_dir``) moves itself, writer and all, to the next free version of the folder:
        nothing is rewritten."""
        in_store = self._versions_in_store(runner, sink.logdir)
        own = sink.open_files()
        if not in_store and claim.claim_folder(sink.logdir, own_files=own):
            return sink  # no other run there, and none started at the same moment claimed it
        from torch.utils.tensorboard import SummaryWriter

        old_dir = sink.logdir
        taken = in_store | runs.taken_versions(old_dir) | {1}
        new_dir = runs.claim_from(old_dir, max(taken) + 1)
        where = f"{old_dir} ({self._remote_for(runner, old_dir)} in the store)" if in_store else old_dir
        _warn(f"EnhancedTensorBoardHook: {where} already holds another run; this fresh run (step 0) writes "
              f"to {new_dir} and leaves it untouched. Resume from a checkpoint (resume=True) to continue that "
              "run instead.")
        os.makedirs(new_dir, exist_ok=True)
        writer = SummaryWriter(new_dir)
        sink.writer.close()
        for path in own:  # what this run's writer already wrote (mmengine's config text) moves with it
            if osp.exists(path):
                os.replace(path, osp.join(new_dir, osp.basename(path)))
        if backend is not None and sink.writer is getattr(backend, "_tensorboard", None):
            backend._tensorboard = writer  # mmengine's LoggerHook scalars follow to the new folder
            backend._save_dir = new_dir
        return SummaryWriterSink(writer, owns_writer=sink.owns_writer)

    @staticmethod
    def _continue_run(runner, sink: SummaryWriterSink) -> None:
        """On ``resume=True`` at step S: into a fixed folder, set aside the steps the interrupted
        run wrote after S; into mmengine's new ``work_dir/<timestamp>/vis_data``, carry the
        previous timestamp folder's steps up to S over, so one clean curve shows."""
        step = int(runner.iter)
        if EnhancedTensorBoardHook._other_files(sink):
            cleanup = resume.truncate_run(sink.logdir, step, exclude=sink.open_files())
            where = sink.logdir
        else:
            previous = _previous_timestamp_folder(sink.logdir)
            cleanup = resume.carry_history(previous, sink.logdir, step) if previous else None
            where = previous
            if cleanup is not None:
                print_log(f"EnhancedTensorBoardHook: resumed at step {step}: steps up to {step} of {previous} "
                          f"continue in {sink.logdir}", logger="current")
        if cleanup is not None:
            _warn(f"EnhancedTensorBoardHook: {cleanup.describe(step, where)}")

    def _remote_for(self, runner, folder: str) -> str:
        """``out_dir/<work_dir name>/<path below work_dir>`` (mmengine LoggerHook's layout), or
        ``out_dir/<folder name>`` for a ``save_dir`` outside the work_dir."""
        work_dir = osp.abspath(runner.work_dir)
        folder = osp.abspath(folder)
        if folder.startswith(work_dir + os.sep):
            return storage.join(self.out_dir, osp.relpath(folder, osp.dirname(work_dir)))
        return storage.join(self.out_dir, osp.basename(folder))

    def _mirror(self, runner, folder: str) -> Mirror:
        mirror = mirror_folder(folder, self._remote_for(runner, folder), self.store, _warn, _info,
                               "EnhancedTensorBoardHook")
        self._mirrors.append(mirror)
        return mirror

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
                print_log(f"EnhancedTensorBoardHook: fetched {fetched} file(s) of {storage.join(parent, name, leaf)} "
                          "to continue its curves", logger="current")
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: could not fetch the interrupted run from {self.out_dir} "
                  f"({type(exc).__name__}: {exc}); its steps stay in the store as they are")

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        try:
            sink = self._open_sink(runner)
            mirror = self._mirror(runner, sink.logdir).start() if self.out_dir is not None else None
            for other in self._mirrors:
                other.start()
            if mirror is not None:
                print_log(f"EnhancedTensorBoardHook: uploading {sink.logdir} to {mirror.url} in the background",
                          logger="current")
            self.session = TorchSession(sink, self.options, warn=_warn, mirror=mirror,
                                        run_dir=mirror.url if mirror is not None else None)
            self.session.skeleton = self.skeleton
            model = measure.unwrap_model(runner.model)
            cfg = getattr(runner, "cfg", None)
            config_text = getattr(cfg, "pretty_text", None) if cfg is not None else None
            self.session.start(model, runner.optim_wrapper, config_text=config_text,
                               hparams=self._hparams(runner), write_header=runner.iter == 0)
            self.session.speed.start(runner.iter)
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: set-up failed ({type(exc).__name__}: {exc}); logging is off "
                  "for this run, training goes on")
            self.session = None

    def _hparams(self, runner) -> Dict[str, object]:
        values: Dict[str, object] = {"framework": "pytorch-mmengine", "max_steps": runner.max_iters}
        try:
            inner = measure.torch_optimizer(runner.optim_wrapper)
            if inner is not None:
                values["optimizer"] = type(inner).__name__
                values["learning_rate"] = float(inner.param_groups[0].get("initial_lr", inner.param_groups[0]["lr"]))
            values["batch_size"] = runner.train_dataloader.batch_size
        except Exception:
            pass
        return values

    # ------------------------------------------------------------------ training
    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        if self.session is None:
            return
        now = time.perf_counter()
        if self._iter_end is not None:  # the loop fetched this batch since the last iteration ended
            self.session.speed.add_data_time(now - self._iter_end)
        self.session.arm(runner.iter + 1, runner.optim_wrapper)
        if self._first_batch is None and isinstance(data_batch, dict) and self.options.log_train_images:
            limit = self.options.max_train_images
            try:  # seed 001 fix 2A: keep only max_train_images of the first batch, on the CPU
                inputs = image_utils.host_images(data_batch["inputs"], limit)
                samples = list(data_batch.get("data_samples") or [])[:limit]
                self._first_batch = {"inputs": torch.from_numpy(np.ascontiguousarray(inputs)),
                                     "data_samples": samples}
            except Exception as exc:
                self.session.run.warn_once("image", "cache", f"could not keep the first training batch for "
                                           f"train/image ({type(exc).__name__}: {exc}); train images are off")
                self._first_batch = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if self.session is None:
            return
        try:
            self._after_train_iter(runner, batch_idx, data_batch, outputs)
        except FloatingPointError:
            raise  # raise_on_nonfinite=True: the user asked training to stop
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: logging failed at step {runner.iter + 1} "
                  f"({type(exc).__name__}: {exc}); training goes on")

    def _after_train_iter(self, runner, batch_idx: int, data_batch, outputs) -> None:
        step = runner.iter + 1
        samples = measure.batch_size(data_batch)
        if samples:
            self.session.speed.add_samples(samples)
        per_epoch = self._iters_per_epoch(runner)
        if self._is_epoch_based(runner):
            epoch = runner.epoch + (batch_idx + 1) / per_epoch if per_epoch else float(runner.epoch)
        else:
            epoch = step / per_epoch if per_epoch else 0.0
        wrapper = runner.optim_wrapper
        self.session.step_end(step, outputs or {}, wrapper, epoch=epoch, pre_clip=self._pre_clip_norm(runner),
                              loss_scaler=getattr(wrapper, "loss_scaler", None),  # AmpOptimWrapper
                              update_may_skip=int(getattr(wrapper, "_accumulative_counts", 1) or 1) > 1)
        if self.options.log_train_images and self._first_batch and \
                self.options.train_image_policy.should_log(step):
            self.session.image("train", step, lambda: self._train_image_batch(runner))
        if self.options.log_graph and not self._graph_done:
            self._graph_done = True
            self._log_graph(runner, data_batch)
        if not self._is_epoch_based(runner) and per_epoch and step % per_epoch == 0:
            self.session.epoch_end(step, step // per_epoch, runner.model)
        self._iter_end = time.perf_counter()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Everything logged up to a checkpoint is on disk (and, with ``out_dir``, sent soon)
        once the checkpoint is: a restart from it finds no gap."""
        if self.session is not None:
            try:
                self.session.run.flush()
            except Exception as exc:
                _warn(f"EnhancedTensorBoardHook: flush before the checkpoint failed ({type(exc).__name__}: {exc})")

    def after_train_epoch(self, runner) -> None:
        if self.session is None or not self._is_epoch_based(runner):
            return
        try:
            self.session.epoch_end(runner.iter, runner.epoch + 1, runner.model)
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: weight histograms failed ({type(exc).__name__}: {exc})")

    def after_train(self, runner) -> None:
        if self.session is not None:
            self.session.stop()

    def after_run(self, runner) -> None:
        """Stop the writer thread (mmengine's writer itself stays open: it is not ours), then
        make the last uploads to ``out_dir``."""
        if self.session is not None:
            self.session.run.close()
            self.session = None
        for mirror in self._mirrors:
            mirror.close()
        self._mirrors = []

    # ------------------------------------------------------------------ validation
    def before_val_epoch(self, runner) -> None:
        self._val_cache = []
        self._iter_end = None
        if self.session is not None:
            self.session.speed.pause()  # validation time is not training-step time

    def after_val_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                       outputs: Optional[Sequence] = None) -> None:
        if self.session is None or not self.options.log_val_images:
            return
        if batch_idx % self.options.val_image_interval != 0:  # seed 001 fix 4C
            return
        kept = sum(b.images.shape[0] for b in self._val_cache)
        room = self.options.max_train_images - kept
        if room <= 0 or not isinstance(data_batch, dict):
            return
        try:
            samples = outputs if outputs else data_batch.get("data_samples")
            self._val_cache.append(image_utils.image_batch(
                measure.unwrap_model(runner.model), data_batch["inputs"], samples, room, with_predictions=True))
        except Exception as exc:
            self.session.run.warn_once("image", "val", f"could not read validation images "
                                       f"({type(exc).__name__}: {exc}); val/image skipped")

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.session is None:
            return
        self.session.speed.resume()
        step = runner.iter  # optimizer updates completed when this validation ran
        try:
            if self.options.log_val_metrics:
                self.session.val_end(step, metrics if metrics is not None else self._hub_metrics(runner))
            if self._val_cache:
                cache, self._val_cache = self._val_cache, []
                self.session.image("val", step, lambda: _concat(cache))
        except FloatingPointError:
            raise
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: validation logging failed ({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _hub_metrics(runner) -> Dict[str, float]:
        """Validation metrics from the message hub (seed 001 fix 4B), for runners that do not
        pass ``metrics`` to ``after_val_epoch``."""
        scalars = runner.message_hub.log_scalars
        return {key[len("val/"):]: buf.current() for key, buf in scalars.items() if key.startswith("val/")}

    @staticmethod
    def _pre_clip_norm(runner) -> Optional[float]:
        wrapper = getattr(runner, "optim_wrapper", None)
        if not getattr(wrapper, "clip_grad_kwargs", None):
            return None
        if wrapper.clip_grad_kwargs.get("type", "norm") != "norm":
            return None
        try:
            return float(runner.message_hub.get_scalar("train/grad_norm").current())
        except Exception:
            return None

    @staticmethod
    def _is_epoch_based(runner) -> bool:
        return type(runner.train_loop).__name__ != "IterBasedTrainLoop" and hasattr(runner.train_loop, "max_epochs")

    @staticmethod
    def _iters_per_epoch(runner) -> int:
        try:
            return len(runner.train_loop.dataloader)
        except Exception:
            return 0

    def _train_image_batch(self, runner) -> image_utils.ImageBatch:
        model = measure.unwrap_model(runner.model)
        batch = self._first_batch
        samples = batch["data_samples"]
        with_predictions = False
        if hasattr(model, "test_step") and samples:
            was_training = model.training
            try:  # predictions on the kept images, so train/image shows progress
                model.eval()
                with torch.no_grad():
                    samples = model.test_step({"inputs": list(batch["inputs"]), "data_samples": samples})
                with_predictions = True
            except Exception:
                samples = batch["data_samples"]
            finally:
                model.train(was_training)
        return image_utils.image_batch(model, batch["inputs"], samples, self.options.max_train_images,
                                       with_predictions=with_predictions)

    def _log_graph(self, runner, data_batch) -> None:
        model = measure.unwrap_model(runner.model)

        class TensorMode(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, inputs):
                return self.inner(inputs, None, mode="tensor")

        try:
            with torch.no_grad():
                inputs = model.data_preprocessor(data_batch, False)["inputs"]
                self.session.run.sink.writer.add_graph(TensorMode(model), inputs[:1])
        except Exception as exc:
            self.session.run.warn_once("graph", "", f"log_graph: could not trace the model "
                                       f"({type(exc).__name__}: {exc}); graph skipped")


def _concat(batches: List[image_utils.ImageBatch]) -> image_utils.ImageBatch:
    first = batches[0]
    merged = image_utils.ImageBatch(images=np.concatenate([b.images for b in batches]), mean=first.mean,
                                    std=first.std, bgr=first.bgr)
    for b in batches:
        merged.gt += b.gt
        merged.gt_visible += b.gt_visible
        merged.pred += b.pred
        merged.scores += b.scores
    return merged


def _previous_timestamp_folder(vis_dir: str) -> Optional[str]:
    """``work_dir/<earlier timestamp>/vis_data`` that holds event files, the newest before
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
            resume.recover(candidate)  # a clean-up interrupted by a kill is finished first
            if reader.event_files(candidate):
                return candidate
    return None


def _schema_only(backend) -> None:
    """Keep mmengine's LoggerHook scalars out of the TensorBoard writer unitb shares.

    LoggerHook is the caller that passes ``file_path`` (its ``scalars.json``) to
    ``add_scalars``; the visualizer hands the same call to every backend, so only the
    TensorBoard backend's copy is dropped here, and scalars a user adds without a file path
    still reach TensorBoard."""
    if getattr(backend, "_unitb_schema_only", False):
        return
    original = backend.add_scalars

    def add_scalars(scalar_dict, step=0, file_path=None, **kwargs):
        if file_path is not None:
            return None
        return original(scalar_dict, step=step, file_path=file_path, **kwargs)

    backend.add_scalars = add_scalars
    backend._unitb_schema_only = True
