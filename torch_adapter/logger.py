"""``TorchLogger``: unitb for a plain PyTorch loop, same tags as the hook.

    logger = TorchLogger("runs/my-run", model=model, optimizer=optimizer)
    for step, (x, y) in enumerate(loader, start=1):
        loss = criterion(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        logger.log_step(step, loss=loss, epoch=epoch)
    logger.log_val(step, {"accuracy": acc})
    logger.close()

Gradient norms are measured inside ``optimizer.step()`` (a step pre-hook armed on logging
steps), so it does not matter whether ``zero_grad`` runs before or after ``log_step``.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, TYPE_CHECKING, Union

import numpy as np
import torch

from torch_adapter import measure
from torch_adapter.graph import FirstInput
from torch_adapter.images import ImageBatch
from torch_adapter.node_link import node_link
from torch_adapter.profiler import step_profiler
from torch_adapter.recorder import ShardPeer, TorchRecorder
from torch_adapter.sink import SummaryWriterSink
from unitb.life import train_step
from unitb.life.lifecycle import LivesARun, RunLife, check_start_step
from unitb.life.options import LogOptions, show_options
from unitb.life.own_values import OwnValuesAPI
from unitb.store.run_location import StoreOptions

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Unpack

    from unitb.life.keywords import RunKeywords


def _is_chief() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_rank() != 0)


class TorchLogger(LivesARun, OwnValuesAPI):
    """Log a plain PyTorch loop in the unitb schema. Only rank 0 writes. Under sharded training
    (FSDP ``fully_shard``) the other ranks take part in one all-reduce on gradient-norm steps,
    so the logged norm is that of the whole gradient, not of rank 0's shard.

    ``start_step``: the optimizer steps already taken when resuming from a checkpoint; the
    run directory is cleaned of any steps written after it (see :mod:`unitb.folder.set_aside`). With
    ``start_step=0`` into a folder that holds another run, the run goes to ``logdir-2``
    (``-3``...): ``run_dir`` is the folder chosen (see :mod:`unitb.folder.versions`).

    ``logdir`` may be a URL (``s3://bucket/runs/exp``, ``gs://…``): the run is written to a
    local spool and uploaded in the background (``storage_options``, ``spool_dir``,
    ``upload_interval``, ``upload_timeout``, ``max_spool_mb``: :mod:`unitb.store.run_location`).

    Args:
        logdir: The run's folder or URL.
        model: The model whose gradients, weights and size are logged (None: your values only).
        optimizer: Its optimizer: gradient norms are measured as it steps.
        start_step: Optimizer steps already taken when resuming from a checkpoint.
        config: Text for the TEXT tab (your config).
        hparams: Your own hyperparameters, for the HPARAMS tab.
        grad_scaler: A ``torch.amp.GradScaler``: norms are of the unscaled gradients.
        **kwargs: The options every entry point takes (``scalar_interval``, ``log_graph``, …).

    Raises:
        ValueError: An option with a bad value or an unknown name (with a "did you mean").
    """

    def __init__(self, logdir: str, model: Optional[torch.nn.Module] = None, optimizer: Any = None,
                 start_step: int = 0, config: Optional[str] = None,
                 hparams: Optional[Mapping[str, object]] = None, grad_scaler: Optional[torch.amp.GradScaler] = None,
                 **kwargs: Unpack[RunKeywords]) -> None:
        self.life = RunLife("TorchLogger", "pytorch", kwargs, measure.device_peak_mb, is_chief=_is_chief,
                            node_link=node_link)
        self.options = self.life.options
        self.enabled = self.life.chief()
        self.logdir = self.life.logdir(logdir, create=self.enabled)
        start_step = check_start_step(start_step)
        if grad_scaler is not None and not hasattr(grad_scaler, "get_scale"):
            raise ValueError(f"grad_scaler must be a torch.amp.GradScaler, got {type(grad_scaler).__name__}")
        self.grad_scaler = grad_scaler
        self.model = model
        self.optimizer = optimizer
        self.recorder: Optional[TorchRecorder] = None
        self._peer: Optional[ShardPeer] = None
        self.life.step = start_step
        self._graph: Optional[FirstInput] = None
        self.life.close_with(self._close_own_parts)
        if not self.enabled:
            self.life.report_node()
            if model is not None and self.options.log_grad_norm and any(
                    measure.is_sharded(p) for p in model.parameters()):
                self._peer = ShardPeer(model, optimizer, self.options)  # joins the norm's all-reduce
                self._peer.arm(start_step + 1)
            return
        # A resume that a live writer refuses raises FolderBusy here: nothing has run yet.
        run = self.life.open_in(self.logdir, start_step, SummaryWriterSink.open)
        self.recorder = TorchRecorder(self.life)
        if model is not None:
            shared = {"model": type(measure.unwrap_model(model)).__name__,
                      "amp": grad_scaler is not None, **measure.optimizer_hparams(optimizer)}
            self.recorder.start(model, optimizer, config_text=config, hparams=self.life.hparams(shared, hparams),
                               write_header=start_step == 0)
            if self.options.log_graph:
                self._graph = FirstInput(model)  # traced at the first logged step after the first forward
        elif start_step == 0 and (hparams or config or self.life.trial is not None):
            # Without a model there is nothing to measure, but the run's own values still count.
            train_step.write_header(run, self.options, config_text=config, hparams=self.life.hparams(hparams))
        self.life.start_profiler(step_profiler, run.sink.logdir, at_step=start_step)
        self.recorder.arm(start_step + 1)

    def log_step(self, step: int, loss: object = None, losses: Optional[Mapping[str, object]] = None,
                 metrics: Optional[Mapping[str, object]] = None, epoch: Optional[float] = None,
                 batch_size: Optional[int] = None, data_time: Optional[float] = None) -> None:
        """Log one optimizer step; call it after ``optimizer.step()`` (``scaler.update()`` under
        mixed precision). ``train/time/step`` is the wall time between scalar points.

        Args:
            step: Optimizer steps done, counted from 1.
            loss: The total loss (``train/loss``).
            losses: Named losses: a total among them (``loss``, ``total_loss``, ``total``) is
                ``train/loss``, the others ``train/loss/{name}``.
            metrics: Training metrics, ``train/{name}``.
            epoch: The fractional epoch, ``train/epoch``.
            batch_size: Samples this step, for ``train/throughput``.
            data_time: Seconds the loop waited for this batch, ``train/time/data``.
        """
        if self._peer is not None:
            self._peer.step_end(loss_scaler=self.grad_scaler)
            self._peer.arm(step + 1)
        if self.recorder is None:
            return
        if batch_size:
            self.recorder.speed.add_samples(int(batch_size))
        if data_time is not None:
            self.recorder.speed.add_data_time(float(data_time))
        all_losses = dict(losses or {})
        if loss is not None:
            all_losses["loss"] = loss
        self.recorder.step_end(step, None, self.optimizer, losses=all_losses, metrics=metrics, epoch=epoch,
                              loss_scaler=self.grad_scaler)
        if self._graph is not None and self._graph.write(self.recorder.run.sink, self.recorder.run.warn_once):
            self._graph = None
        self.life.after_step(step)
        self.recorder.arm(step + 1)  # the probe measures inside the next optimizer.step()

    def log_epoch(self, step: int, epoch: int) -> None:
        """Log a completed epoch: weight histograms every ``weight_hist_interval`` epochs.

        Args:
            step: Optimizer steps done.
            epoch: Epochs done, counted from 1.
        """
        if self.recorder is not None and self.model is not None:
            self.recorder.epoch_end(step, epoch, self.model)

    def log_val(self, step: int, metrics: Mapping[str, object]) -> None:
        """Log a validation's metrics as ``val/{name}``, on the training step axis.

        Args:
            step: Optimizer steps done when the validation ran.
            metrics: ``{"loss": ..., "PCK": ...}``.
        """
        if self.recorder is not None:
            self.recorder.val_end(step, metrics)

    def log_images(self, split: str, step: int, images: Union[torch.Tensor, ArrayLike],
                   gt_keypoints: Optional[Sequence] = None, pred_keypoints: Optional[Sequence] = None,
                   pred_scores: Optional[Sequence] = None,
                   mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> None:
        """Log a batch of images with ground truth (green) and predicted (red) keypoints.

        Args:
            split: ``"train"`` or ``"val"``: the tag is ``{split}/image``.
            step: Optimizer steps done.
            images: N x C x H x W, a tensor or an array (only ``max_train_images`` are kept).
            gt_keypoints: N x K x 2 pixel coordinates.
            pred_keypoints: N x K x 2 pixel coordinates.
            pred_scores: N x K; keypoints under ``kpt_thr`` are not drawn.
            mean: The normalisation's per-channel mean, undone before drawing.
            std: The normalisation's per-channel std, undone before drawing.
        """
        if self.recorder is None:
            return
        limit = self.options.max_train_images

        def batch() -> ImageBatch:
            array = images.detach()[:limit].cpu().numpy() if isinstance(images, torch.Tensor) \
                else np.asarray(images)[:limit]

            def as_list(seq):
                return None if seq is None else [None if s is None else np.asarray(
                    s.detach().cpu() if isinstance(s, torch.Tensor) else s) for s in list(seq)[:limit]]
            return ImageBatch(images=array, mean=mean, std=std, gt=as_list(gt_keypoints) or [],
                              pred=as_list(pred_keypoints) or [], scores=as_list(pred_scores) or [])
        self.recorder.image(split, step, batch)

    def flush(self) -> None:
        """Write out everything logged so far (blocks until it is on disk)."""
        if self.recorder is not None:
            self.recorder.run.flush()

    def _own_closed(self):
        return "TorchLogger: log_* after close()" if self.enabled else None

    def _own_target(self):
        return (self.recorder.run if self.recorder is not None else None), self.life.step

    def _close_own_parts(self) -> None:
        if self._graph is not None:
            self._graph.remove()  # the model was never called: nothing to trace
            self._graph = None
        if self._peer is not None:
            self._peer.stop()
            self._peer = None
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def close(self) -> None:
        """Write out what is queued, close the run and finish its uploads and backends."""
        self.life.close()

    def __enter__(self) -> "TorchLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


show_options(TorchLogger.__init__, LogOptions, StoreOptions)
