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
import time
from typing import Dict, Optional, Sequence, TYPE_CHECKING, Union

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from torch_adapter import measure, mmengine_internals, mmengine_runner
from torch_adapter.mmengine_vis_dir import MMEngineVisDir
from torch_adapter.mmengine_images import MMEngineImages, write_graph
from torch_adapter.mmengine_validation import ValidationPass
from torch_adapter.node_link import node_link
from torch_adapter.profiler import step_profiler
from torch_adapter.recorder import TorchRecorder
from unitb.life.lifecycle import RunLife, check_logdir
from unitb.life.options import LogOptions, show_options
from unitb.life.own_values import OwnValuesAPI
from unitb.store.run_location import StoreOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from unitb.life.keywords import HookKeywords

DATA_BATCH = Optional[Union[dict, tuple, list]]

mmengine_internals.redact_config_text()  # the Runner writes its config before any hook exists


def _warn(message: str) -> None:
    print_log(message, logger="current", level=30)  # WARNING: the user can act on it


def _info(message: str) -> None:
    print_log(message, logger="current")


@HOOKS.register_module(force=True)
class EnhancedTensorBoardHook(Hook, OwnValuesAPI):
    """Gradient norms, weight histograms, validation metrics, images, learning rates, model
    statistics and losses of an mmengine Runner in the unitb schema:
    ``custom_hooks = [dict(type='EnhancedTensorBoardHook', ...)]``.

    Args:
        backend_args: The store's options for ``out_dir`` (fsspec storage options), as mmengine's LoggerHook.
        skeleton: Pairs of keypoint indices joined by a line (default: the dataset's).
        keep_mmengine_scalars: Also keep mmengine's LoggerHook scalars (``loss``, ``lr``…) in TensorBoard.
        out_dir: A URL or folder the run is mirrored to, at ``out_dir/<work_dir name>/<timestamp>/vis_data``.
        hparams: Your own hyperparameters, for the HPARAMS tab (the config's are there already).
        **kwargs: The options every entry point takes (``scalar_interval``, ``log_graph``, …).

    Raises:
        ValueError: An option with a bad value or an unknown name (with a "did you mean").
    """

    priority = "VERY_LOW"

    def __init__(self, backend_args: Optional[dict] = None, skeleton: Optional[Sequence[Sequence[int]]] = None,
                 keep_mmengine_scalars: bool = False, out_dir: Optional[str] = None,
                 hparams: Optional[dict] = None, **kwargs: Unpack[HookKeywords]) -> None:
        if hparams is not None and not isinstance(hparams, dict):
            raise ValueError(f"hparams must be a dict or None, got {hparams!r}")
        self.extra_hparams = dict(hparams or {})
        if backend_args is not None and not isinstance(backend_args, dict):
            raise ValueError(f"backend_args must be a dict or None, got {backend_args!r}")
        self.life = RunLife("EnhancedTensorBoardHook", "pytorch-mmengine", kwargs, measure.device_peak_mb, _warn,
                            _info, storage_options=backend_args, is_chief=is_main_process,
                            node_link=node_link)
        self.store, self.options = self.life.store, self.life.options
        # As in mmengine's LoggerHook: ``out_dir`` (a URL, or a folder) receives ``<work_dir
        # name>/<timestamp>/vis_data``, uploaded in the background; ``backend_args``: the store's options.
        self.backend_args = backend_args
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise ValueError(f"out_dir must be a URL, a folder or None, got {out_dir!r}")
        self.out_dir = None if out_dir is None else check_logdir(out_dir, self.store, "EnhancedTensorBoardHook",
                                                                 create=False)
        # The Runner builds hooks before it loads a checkpoint: resume=True and load_from then
        # work on torch >= 2.6's weights-only torch.load, with the check on for everything else.
        try:
            mmengine_internals.allow_checkpoint_globals()
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: could not allow-list mmengine's checkpoint contents for torch.load "
                  f"({type(exc).__name__}: {exc}); resume=True may need TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1")
        self.folder = MMEngineVisDir(self.out_dir, self.store, _warn, _info, self.options.resume_wait)
        self.skeleton = [tuple(pair) for pair in skeleton] if skeleton else None
        if not isinstance(keep_mmengine_scalars, bool):
            raise ValueError(f"keep_mmengine_scalars must be True or False, got {keep_mmengine_scalars!r}")
        # mmengine's LoggerHook scalars (loss, lr, time, val metrics at the epoch index…) are all
        # in unitb's schema: by default they stay out of TensorBoard (scalars.json keeps them).
        self.keep_mmengine_scalars = keep_mmengine_scalars
        self._iter_end: Optional[float] = None
        self.recorder: Optional[TorchRecorder] = None
        self.images = MMEngineImages(self.options)
        self.validation = ValidationPass(self.options, self.images)
        self._graph_done = False

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        if not self.life.chief():
            self.life.report_node()
            return
        self.life.close_with(self.folder.close, after_uploads=True)  # mmengine's out_dir, after the run's own
        try:
            sink = self.folder.open_sink(runner)
            backend = mmengine_internals.tensorboard_backend(runner)
            if backend is not None and not self.keep_mmengine_scalars:
                mmengine_internals.keep_schema_only(backend, _warn)
            print_log(f"EnhancedTensorBoardHook: writing into {sink.logdir}", logger="current")
            mirror = self.folder.start_mirrors(runner, sink)
            self.life.open(sink, start_step=int(runner.iter), url=mirror.url if mirror is not None else None,
                           mirror=mirror, run_name=mmengine_runner.run_name(runner))
            self.recorder = TorchRecorder(self.life)
            self.life.close_with(self.recorder.stop)
            self.recorder.skeleton = self.skeleton
            model = measure.unwrap_model(runner.model)
            self.recorder.start(model, runner.optim_wrapper, config_text=mmengine_runner.config_text(runner, backend),
                               hparams=self.life.hparams(mmengine_runner.trained_with(runner, self.extra_hparams)),
                               write_header=runner.iter == 0)
            self.life.start_profiler(step_profiler, sink.logdir)
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: set-up failed ({type(exc).__name__}: {exc}); logging is off "
                  "for this run, training goes on")
            self.recorder = None

    # ------------------------------------------------------------------ training
    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        if self.recorder is None:
            return
        now = time.perf_counter()
        if self._iter_end is not None:  # the loop fetched this batch since the last iteration ended
            self.recorder.speed.add_data_time(now - self._iter_end)
        self.recorder.arm(runner.iter + 1, runner.optim_wrapper)
        self.images.keep_first_batch(data_batch, self.recorder.run.warn_once)
        self.life.before_step(runner.iter + 1)

    def after_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if self.recorder is None:
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
        self.life.after_step(step)
        samples = measure.batch_size(data_batch)
        if samples:
            self.recorder.speed.add_samples(samples)
        wrapper = runner.optim_wrapper
        per_epoch, epoch_based = mmengine_runner.iters_per_epoch(runner), mmengine_runner.is_epoch_based(runner)
        epoch = mmengine_runner.fractional_epoch(runner, batch_idx, step, per_epoch, epoch_based)
        self.recorder.step_end(step, outputs or {}, wrapper, epoch=epoch,
                               pre_clip=mmengine_runner.pre_clip_norm(runner),
                               loss_scaler=getattr(wrapper, "loss_scaler", None),  # AmpOptimWrapper
                               update_may_skip=mmengine_runner.update_may_skip(runner))
        if self.images.train_due(step):
            self.recorder.image("train", step, lambda: self.images.train_batch(runner.model))
        if self.options.log_graph and not self._graph_done:
            self._graph_done = True
            write_graph(self.recorder.run.sink, runner.model, data_batch, self.recorder.run.warn_once)
        if not epoch_based and per_epoch and step % per_epoch == 0:
            self.recorder.epoch_end(step, step // per_epoch, runner.model)
        self._iter_end = time.perf_counter()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Everything logged up to a checkpoint is on disk (and, with ``out_dir``, sent soon)
        once the checkpoint is: a restart from it finds no gap."""
        if self.recorder is not None:
            try:
                self.recorder.run.flush()
            except Exception as exc:
                _warn(f"EnhancedTensorBoardHook: flush before the checkpoint failed ({type(exc).__name__}: {exc})")

    def after_train_epoch(self, runner) -> None:
        if self.recorder is None or not mmengine_runner.is_epoch_based(runner):
            return
        try:
            self.recorder.epoch_end(runner.iter, runner.epoch + 1, runner.model)
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: weight histograms failed ({type(exc).__name__}: {exc})")

    def after_train(self, runner) -> None:
        self.life.end_training()

    def after_run(self, runner) -> None:
        """Stop the writer thread (mmengine's writer itself stays open: it is not ours), then
        make the last uploads to ``out_dir``."""
        self.recorder = None
        self.life.close()

    # ------------------------------------------------------------------ validation
    def before_val_epoch(self, runner) -> None:
        self.validation.start(runner.model, self.recorder)
        self._iter_end = None
        if self.recorder is not None:
            self.recorder.speed.pause()  # validation time is not training-step time

    def after_val_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                       outputs: Optional[Sequence] = None) -> None:
        if self.recorder is not None:
            self.validation.add(self.recorder, runner.model, batch_idx, data_batch, outputs)

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.recorder is None:
            return
        self.recorder.speed.resume()
        try:
            if metrics is None and self.options.log_val_metrics:
                metrics = mmengine_runner.hub_metrics(runner)
            self.validation.finish(self.recorder, runner.iter, metrics or {})  # at the updates completed
        except FloatingPointError:
            raise
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: validation logging failed ({type(exc).__name__}: {exc})")

    def _own_closed(self):
        return ("EnhancedTensorBoardHook writes between before_train and after_run: log_* was called outside "
                "them") if self.life.chief() else None

    def _own_target(self):
        return (self.recorder.run if self.recorder is not None else None), self.life.step


show_options(EnhancedTensorBoardHook.__init__, LogOptions, StoreOptions)
