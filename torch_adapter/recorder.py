"""The PyTorch side of a run: what the mmengine hook and TorchLogger share.

Both entry points only translate their framework's events into calls on a
:class:`TorchRecorder`; measuring is in :mod:`torch_adapter.measure`, naming and guarding
in the core (:class:`unitb.write.writer.RunLogger`).
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional

import torch

from torch_adapter import measure
from torch_adapter.images import ImageBatch
from torch_adapter.activations import ActivationProbe
from unitb import schema
from unitb.write import render
from unitb.life import train_step
from unitb.life.lifecycle import RunLife
from unitb.life.options import LogOptions
from unitb.write.writer import RunLogger, as_number


class DueGradients:
    """When the gradient probe measures: at due steps, and, when a due step applied no update
    (a loss-scaler skip, an accumulating micro-batch), at the next update that is applied.
    Shared by the writing recorder and, under sharded training, by the other ranks, which
    must measure (and all-reduce) at exactly the same steps."""

    def __init__(self, options: LogOptions):
        self.options = options
        self.armed = False
        self.carry = False

    def arm(self, step: int) -> None:
        self.armed = self.options.log_grad_norm and (self.carry or self.options.grad_policy.should_log(step))

    def settle(self, measured: bool, may_skip: bool) -> bool:
        """After an armed step: True when gradients were expected and none came (warn)."""
        self.carry = not measured and may_skip
        missing = not measured and not may_skip
        self.armed = False
        return missing


class TorchRecorder:
    """What the hook and ``TorchLogger`` measure with torch, written into the run ``life`` opened."""

    def __init__(self, life: RunLife):
        assert life.run is not None, "open the run before the recorder"
        self.life = life
        self.options = life.options
        self.run: RunLogger = life.run
        self.speed = life.speed
        self.probe: Optional[measure.GradNormProbe] = None
        self.activations: Optional[ActivationProbe] = None  # activation_layers
        self.weight_names = None
        self.skeleton = None
        self.due = DueGradients(self.options)
        self._rates: Optional[Dict[str, float]] = None

    # ------------------------------------------------------------------ set-up
    def start(self, model: torch.nn.Module, optimizer=None, config_text: Optional[str] = None,
              hparams: Optional[Mapping[str, object]] = None, write_header: bool = True) -> None:
        """Attach the gradient probe and write the once-per-run records (step 0)."""
        model = measure.unwrap_model(model)
        opts = self.options
        train_step.write_header(self.run, opts, model_stats=measure.model_stats(model) if opts.log_model_stats
                                else None, config_text=config_text, hparams=hparams, at_start=write_header)
        if opts.activation_layers and self.activations is None:
            self.activations = ActivationProbe(model, opts.activation_layers, self.run.warn_once)
        torch_opt = measure.torch_optimizer(optimizer)
        if opts.log_grad_norm and torch_opt is not None and self.probe is None:
            self.probe = measure.GradNormProbe(model, opts.max_layers_to_log, lambda: self.due.armed,
                                               keep_grads=opts.log_grad_hist)
            self.probe.attach(torch_opt)
        elif opts.log_grad_norm and torch_opt is None:
            self.run.warn_once("setup", "optimizer", "no torch optimizer found: gradient norms are not logged")

    def stop(self) -> None:
        if self.probe is not None:
            self.probe.detach()
        if self.activations is not None:
            self.activations.close()
        self.run.flush()

    # ------------------------------------------------------------------ per step
    def arm(self, step: int, optimizer=None) -> None:
        """Before the step: measure gradients in the optimizer pre-hook only when due, and
        note the learning rates this step will use (schedulers may step before
        ``after_train_iter`` hooks run)."""
        self.due.arm(step)
        if self.activations is not None:
            self.activations.armed = self.options.grad_policy.should_log(step)
        if self.probe is not None:
            self.probe.result = None
        self._rates = None
        if optimizer is not None and self.options.log_lr and self.life.step_due(step):
            self._rates = measure.learning_rates(optimizer)

    def step_end(self, step: int, log_vars: Optional[Mapping[str, object]] = None, optimizer=None, *,
                 losses: Optional[Mapping[str, object]] = None, metrics: Optional[Mapping[str, object]] = None,
                 epoch: Optional[float] = None, pre_clip: object = None, loss_scaler=None,
                 update_may_skip: bool = False) -> None:
        """Write what is due at ``step``: ``log_vars`` (losses and metrics told apart by name, as
        mmengine gives them), ``losses`` and ``metrics`` (:func:`unitb.life.train_step.write_train_step`).
        ``loss_scaler``: a ``torch.amp.GradScaler`` (mmengine's
        ``AmpOptimWrapper.loss_scaler``), whose scale is logged and which may skip an update
        (inf/NaN gradients). ``update_may_skip``: the iteration may apply no update at all
        (gradient accumulation). Then a due gradient norm is taken at the next update applied,
        labelled with that iteration, and no warning is given."""
        opts, run = self.options, self.run
        scaling = loss_scaler is not None and _scaler_enabled(loss_scaler)
        if self.life.step_due(step):
            rates = None
            if opts.log_lr:
                rates = self._rates if self._rates is not None else (
                    measure.learning_rates(optimizer) if optimizer is not None else None)
            log_vars, losses, metrics = measure.on_host(log_vars, losses, metrics)  # one copy per device
            self.life.write_step(step, log_vars, losses=losses, metrics=metrics, learning_rates=rates, epoch=epoch,
                                 loss_scale=float(loss_scaler.get_scale()) if scaling else None)
        if self.due.armed and self.probe is not None:
            result = self.probe.result
            missing = self.due.settle(result is not None, may_skip=scaling or update_may_skip)
            if missing:
                run.warn_once("grad", "none", f"no gradients were seen at step {step} (was optimizer.step() "
                              "called?); gradient norms skipped")
            elif result is not None:
                global_norm, layers = result
                run.grad_norms(step, global_norm, layers, pre_clip=pre_clip)
                if opts.log_grad_hist and self.probe.grad_arrays:
                    run.histograms(schema.gradients_histogram, step, self.probe.grad_arrays)
            self.probe.result = None
        self.due.armed = False
        self._rates = None
        if self.activations is not None and (self.activations.armed or self.activations.arrays):
            captured = self.activations.take()
            if captured:
                run.histograms(schema.activations_histogram, step, captured)

    def epoch_end(self, step: int, epochs_completed: int, model: torch.nn.Module) -> None:
        if self.options.log_weight_hist and self.options.weight_policy.should_log(epochs_completed):
            self.weight_names, arrays = measure.weight_arrays(model, self.weight_names,
                                                              self.options.max_layers_to_log)
            self.run.histograms(schema.weights_histogram, step, arrays)

    def val_end(self, step: int, metrics: Mapping[str, object]) -> None:
        if self.options.log_val_metrics and metrics:
            numeric: Dict[str, object] = {}
            for key, value in metrics.items():
                if as_number(value) is None:
                    self.run.warn_once("metric", str(key), f"validation metric {key!r} is not a number "
                                       f"({type(value).__name__}); skipped")
                    continue
                numeric[key] = value
            self.run.metrics(schema.VAL, step, numeric)

    def image(self, split: str, step: int, batch: Callable[[], ImageBatch]) -> None:
        """Collect the batch here (model predictions, host copies), render on the writer thread."""
        opts = self.options
        if self.run.heavy_stopped:
            return
        try:
            b = batch()
        except Exception as exc:
            self.run.warn_once("image", f"{split}:{type(exc).__name__}", f"could not collect the {split} images "
                               f"at step {step} ({type(exc).__name__}: {exc}); image skipped")
            return

        def draw():
            return render.render_batch(b.images, mean=b.mean, std=b.std, bgr=b.bgr, max_images=opts.max_train_images,
                                       gt_keypoints=b.gt, gt_visible=b.gt_visible, pred_keypoints=b.pred,
                                       pred_scores=b.scores, kpt_thr=opts.kpt_thr,
                                       skeleton=self.skeleton)
        self.run.image(split, step, draw)
        if b.heatmaps:  # mmpose's predicted heatmaps, over the same crops
            self.run.tagged_image(schema.heatmap(split), step, lambda: render.render_batch(
                b.images, mean=b.mean, std=b.std, bgr=b.bgr, max_images=opts.max_train_images, heatmaps=b.heatmaps),
                f"the {split} heatmaps")


def _scaler_enabled(scaler) -> bool:
    try:
        return bool(scaler.is_enabled())
    except Exception:
        return True


class ShardPeer:
    """A non-writing rank of sharded training (FSDP ``fully_shard``): each rank holds only its
    shard of every gradient, so the global norm needs every rank's part. The peer measures
    its shard at exactly the steps the writing rank does and joins the one all-reduce there;
    it writes nothing."""

    def __init__(self, model: torch.nn.Module, optimizer, options: LogOptions):
        self.due = DueGradients(options)
        self.probe = measure.GradNormProbe(model, options.max_layers_to_log, lambda: self.due.armed)
        torch_opt = measure.torch_optimizer(optimizer)
        if torch_opt is not None:
            self.probe.attach(torch_opt)

    def arm(self, step: int) -> None:
        self.due.arm(step)
        self.probe.result = None

    def step_end(self, loss_scaler=None, update_may_skip: bool = False) -> None:
        if self.due.armed:
            scaling = loss_scaler is not None and _scaler_enabled(loss_scaler)
            self.due.settle(self.probe.result is not None, may_skip=scaling or update_may_skip)
        self.probe.result = None

    def stop(self) -> None:
        self.probe.detach()
