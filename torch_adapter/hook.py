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
from typing import Dict, Optional, Sequence, Union

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from torch_adapter import measure, mmengine_internals, pose_matches
from torch_adapter.layer_features import LayerFeatures
from torch_adapter.mmengine_folder import MMEngineRunFolder
from torch_adapter.mmengine_images import MMEngineImages, write_graph
from torch_adapter.profiler import step_profiler
from torch_adapter.session import TorchSession
from unitb import schema
from unitb.write import hparams
from unitb.write import protos
from unitb.files import storage
from unitb.log.lifecycle import RunLife
from unitb.log.options import LogOptions, show_options
from unitb.log.own_values import OwnValues, OwnValuesAPI
from unitb.store.remote_folder import StoreOptions

DATA_BATCH = Optional[Union[dict, tuple, list]]

mmengine_internals.redact_config_text()  # the Runner writes its config before any hook exists


def _warn(message: str) -> None:
    print_log(message, logger="current", level=30)  # WARNING: the user can act on it


def _info(message: str) -> None:
    print_log(message, logger="current")


@HOOKS.register_module(force=True)
class EnhancedTensorBoardHook(Hook, OwnValuesAPI):
    """Gradient norms, weight histograms, validation metrics, images, learning rates, model
    statistics and losses in the unitb schema; see :class:`unitb.log.options.LogOptions` for the
    full list of parameters and their defaults."""

    priority = "VERY_LOW"

    def __init__(self, backend_args: Optional[dict] = None, skeleton: Optional[Sequence[Sequence[int]]] = None,
                 keep_mmengine_scalars: bool = False, out_dir: Optional[str] = None,
                 hparams: Optional[dict] = None, **kwargs) -> None:
        if hparams is not None and not isinstance(hparams, dict):
            raise ValueError(f"hparams must be a dict or None, got {hparams!r}")
        self.extra_hparams = dict(hparams or {})
        if backend_args is not None and not isinstance(backend_args, dict):
            raise ValueError(f"backend_args must be a dict or None, got {backend_args!r}")
        self.life = RunLife("EnhancedTensorBoardHook", kwargs, measure.device_peak_mb, _warn, _info,
                            storage_options=backend_args)
        self.store, self.options = self.life.store, self.life.options
        # As in mmengine's LoggerHook: ``out_dir`` (a URL such as s3://bucket/runs, or a
        # folder) receives ``<work_dir name>/<timestamp>/vis_data``; ``backend_args`` are the
        # store's options (endpoint_url, key, secret, …: fsspec storage options). The event
        # files are written locally as always and uploaded in the background (unitb.store.mirror).
        self.backend_args = backend_args
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise ValueError(f"out_dir must be a URL, a folder or None, got {out_dir!r}")
        self.out_dir = None if out_dir is None else storage.check_location(
            out_dir, self.store.storage_options, "EnhancedTensorBoardHook")
        # The Runner builds hooks before it loads a checkpoint: resume=True and load_from then
        # work on torch >= 2.6's weights-only torch.load, with the check on for everything else.
        try:
            mmengine_internals.allow_checkpoint_globals()
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: could not allow-list mmengine's checkpoint contents for torch.load "
                  f"({type(exc).__name__}: {exc}); resume=True may need TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1")
        self.folder = MMEngineRunFolder(self.out_dir, self.store, _warn, _info, self.options.resume_wait)
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
        self.images = MMEngineImages(self.options)
        self.matches = pose_matches.KeypointMatches()  # val/pr/keypoints_oks50, _oks75
        self._pr_curves = self.options.log_pr_curves  # off for the run once matching failed (options stay as given)
        self.features = LayerFeatures(self.options.embedding_layer) if self.options.embedding_layer else None
        self._graph_done = False

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        try:
            sink = self.folder.open_sink(runner)
            backend = mmengine_internals.tensorboard_backend(runner)
            if backend is not None and not self.keep_mmengine_scalars:
                self._keep_schema_only(backend)
            print_log(f"EnhancedTensorBoardHook: writing into {sink.logdir}", logger="current")
            mirror = self.folder.start_mirrors(runner, sink)
            self.life.open(sink, start_step=int(runner.iter), url=mirror.url if mirror is not None else None,
                           mirror=mirror, run_name=self._run_name(runner))
            self.session = TorchSession(self.life)
            self.session.skeleton = self.skeleton
            model = measure.unwrap_model(runner.model)
            cfg = getattr(runner, "cfg", None)
            config_text = getattr(cfg, "pretty_text", None) if cfg is not None else None
            if backend is not None and cfg:
                config_text = None  # the Runner wrote its config into this writer already: one card per run
            self.session.start(model, runner.optim_wrapper, config_text=config_text,
                               hparams=self._hparams(runner), write_header=runner.iter == 0)
            self.life.start_profiler(step_profiler, sink.logdir)
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: set-up failed ({type(exc).__name__}: {exc}); logging is off "
                  "for this run, training goes on")
            self.session = None

    @staticmethod
    def _run_name(runner) -> str:
        """The name a W&B / MLflow run gets: ``<work_dir>/<timestamp>`` (mmengine's run folder is
        ``work_dir/<timestamp>/vis_data``, and "vis_data" names nothing)."""
        return f"{os.path.basename(os.path.normpath(runner.work_dir))}/{runner.timestamp}"

    @staticmethod
    def _keep_schema_only(backend) -> None:
        missing = mmengine_internals.missing_internals(backend)
        if missing:
            import mmengine

            _warn(f"EnhancedTensorBoardHook: mmengine's TensorboardVisBackend has no {', '.join(missing)}"
                  f"{mmengine_internals.version_note(mmengine.__version__)}; mmengine's LoggerHook scalars stay in "
                  "TensorBoard beside unitb's")
            return
        mmengine_internals.schema_only(backend)

    def _hparams(self, runner) -> Dict[str, object]:
        """What the run was trained with (:mod:`unitb.write.hparams`): the shared names, the config's
        model / codec / optimizer / schedule / train_cfg sections flattened, then ``hparams=``."""
        wrapper = runner.optim_wrapper
        values: Dict[str, object] = {"framework": "pytorch-mmengine", "max_steps": runner.max_iters,
                                     "model": type(measure.unwrap_model(runner.model)).__name__,
                                     "amp": getattr(wrapper, "loss_scaler", None) is not None}
        if self._is_epoch_based(runner):
            values["epochs"] = runner.max_epochs
        try:
            values.update(measure.optimizer_hparams(wrapper))
            values["batch_size"] = runner.train_dataloader.batch_size
        except Exception:
            pass
        cfg = getattr(runner, "cfg", None)
        return hparams.merged(values, hparams.from_sections(cfg) if cfg else None, self.extra_hparams)

    # ------------------------------------------------------------------ training
    def before_train_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None) -> None:
        if self.session is None:
            return
        now = time.perf_counter()
        if self._iter_end is not None:  # the loop fetched this batch since the last iteration ended
            self.session.speed.add_data_time(now - self._iter_end)
        self.session.arm(runner.iter + 1, runner.optim_wrapper)
        self.images.keep_first_batch(data_batch, self.session.run.warn_once)
        self.life.before_step(runner.iter + 1)

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
        self.life.after_step(step)
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
                              update_may_skip=mmengine_internals.accumulative_counts(wrapper) > 1)
        if self.images.train_due(step):
            self.session.image("train", step, lambda: self.images.train_batch(runner.model))
        if self.options.log_graph and not self._graph_done:
            self._graph_done = True
            write_graph(self.session.run.sink, runner.model, data_batch, self.session.run.warn_once)
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
        self.life.end_profiler()
        if self.session is not None:
            self.session.stop()

    def after_run(self, runner) -> None:
        """Stop the writer thread (mmengine's writer itself stays open: it is not ours), then
        make the last uploads to ``out_dir``."""
        self.session = None
        self.life.close()
        self.folder.close()

    # ------------------------------------------------------------------ validation
    def before_val_epoch(self, runner) -> None:
        self.images.start_val()
        self.matches.start()
        if self.features is not None and self.session is not None:
            self.features.start(measure.unwrap_model(runner.model), self.session.run.warn_once)
        self._iter_end = None
        if self.session is not None:
            self.session.speed.pause()  # validation time is not training-step time

    def after_val_iter(self, runner, batch_idx: int, data_batch: DATA_BATCH = None,
                       outputs: Optional[Sequence] = None) -> None:
        if self.session is not None:
            self.images.keep_val_batch(runner.model, batch_idx, data_batch, outputs, self.session.run.warn_once)
            before = len(self.matches.similarities)
            if self._pr_curves or self.features is not None:
                try:
                    self.matches.add(outputs)
                except Exception as exc:  # a model whose samples look otherwise: no curve, one warning
                    self.session.run.warn_once("pr", "oks", f"could not match validation keypoints by OKS "
                                               f"({type(exc).__name__}: {exc}); val/pr/keypoints_* skipped")
                    self._pr_curves = False
            if self.features is not None:
                self.features.add_batch(data_batch, [f"{oks:.2f}" for oks in self.matches.similarities[before:]])

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        if self.session is None:
            return
        self.session.speed.resume()
        step = runner.iter  # optimizer updates completed when this validation ran
        try:
            if self.options.log_val_metrics:
                self.session.val_end(step, metrics if metrics is not None else self._hub_metrics(runner))
            val_images = self.images.take_val()
            if val_images is not None:
                self.session.image("val", step, val_images)
            own = OwnValues(self.session.run)
            matched = self.matches.take()
            kept = self.features.finish() if self.features is not None else None
            if kept is not None:
                features, oks, images = kept
                own.embedding(schema.VAL_FEATURES, features, step, {"oks": oks} if any(oks) else None, images)
            for tag, (labels, scores) in (matched.items() if self._pr_curves else ()):
                own.pr_curve(tag, labels, scores, step, protos.PR_THRESHOLDS)
        except FloatingPointError:
            raise
        except Exception as exc:
            _warn(f"EnhancedTensorBoardHook: validation logging failed ({type(exc).__name__}: {exc})")

    def _own_closed(self):
        return ("EnhancedTensorBoardHook writes between before_train and after_run: log_* was called outside "
                "them") if is_main_process() else None

    def _own_target(self):
        return (self.session.run if self.session is not None else None), self.life.step

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _hub_metrics(runner) -> Dict[str, float]:
        """Validation metrics from the message hub, for runners that do not
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


show_options(EnhancedTensorBoardHook.__init__, LogOptions, StoreOptions, leave_out=("storage_options", "spool_dir"))
