"""What a Keras fit writes at its due points, read back from the graph's probe.

Keras runs ``steps_per_execution`` steps out of sight, so the callback cannot write as steps
happen: before a block that holds a due point it arms the probe (which measures and keeps rows
in the graph), and when the next block begins (or the epoch ends) it reads what was kept — one
small host transfer per logged block — and writes it at the steps it belongs to: the step's
values (:func:`unitb.life.train_step.write_train_step`), gradient norms, activations, images,
and the hparams at the first point (Keras tells callbacks no batch size; the samples counted in
the graph give it).
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np

from tf_adapter import measure
from tf_adapter.due import DuePlan, EpochClock
from tf_adapter.probe import GradProbe, applying_optimizer
from tf_adapter.model_records import keras_hparams, render_images, write_heatmaps
from tf_adapter.step_returns import StepReturns
from unitb import schema
from unitb.life.lifecycle import RunLife
from unitb.life.own_values import OwnValues
from unitb.write import oks_matching, protos

LR_KEY = measure.MetricsFetch.LR  # the fetched LR travels with the logs under a key no metric can have
SCALE_KEY = measure.MetricsFetch.LOSS_SCALE


class FitImages:
    """The batches a fit draws (N x H x W x C), their ground truth, and how to predict on them."""

    def __init__(self, image_data=None, gt_keypoints=None, val_image_data=None, val_gt_keypoints=None,
                 predict_keypoints: Optional[Callable] = None, predict_heatmaps: Optional[Callable] = None,
                 skeleton: Optional[Sequence] = None):
        if predict_keypoints is not None and not callable(predict_keypoints):
            raise ValueError("predict_keypoints must be callable(model, images) -> (keypoints, scores)")
        if predict_heatmaps is not None and not callable(predict_heatmaps):
            raise ValueError("predict_heatmaps must be callable(model, images) -> heatmaps N x h x w x K")
        self.data = {schema.TRAIN: (image_data, gt_keypoints), schema.VAL: (val_image_data, val_gt_keypoints)}
        self.predict_keypoints, self.predict_heatmaps, self.skeleton = predict_keypoints, predict_heatmaps, skeleton

    def has(self, split: str) -> bool:
        return self.data[split][0] is not None

    def log(self, life: RunLife, model, split: str, step: int) -> None:
        """Predict here (the model is not thread-safe mid-training), render on the writer thread;
        validation's predictions against its ground truth also give the keypoint PR curves."""
        data, gt_keypoints = self.data[split]
        images = np.asarray(data)[: life.options.max_train_images]
        pred = scores = None
        if self.predict_keypoints is not None:
            pred, scores = self.predict_keypoints(model, images)
            if split == schema.VAL and gt_keypoints is not None and life.options.log_pr_curves:
                self._pr_curves(life, step, pred, scores, gt_keypoints)
        life.run.image(split, step, render_images(life.options, images, gt_keypoints=gt_keypoints,
                                                  pred_keypoints=pred, pred_scores=scores, skeleton=self.skeleton))
        if self.predict_heatmaps is not None:
            write_heatmaps(life.run, life.options, split, step, images,
                           lambda: self.predict_heatmaps(model, images))


    @staticmethod
    def _pr_curves(life: RunLife, step: int, pred, scores, gt_keypoints) -> None:
        """``val/pr/keypoints_oks50`` and ``…_oks75``: each image's predicted pose against its
        ground truth (K x 2, or K x 3 with visibility), as the mmengine hook draws them."""
        matches = oks_matching.KeypointMatches()
        for one_pred, one_scores, one_gt in zip(pred, scores, gt_keypoints):
            gt = np.asarray(one_gt, dtype=np.float64)
            visible = gt[..., 2] if gt.shape[-1] == 3 else None
            matches.add(np.asarray(one_pred)[..., :2], gt[..., :2], np.asarray(one_scores), visible)
        own = OwnValues(life.run)
        for tag, (labels, matched_scores) in matches.take().items():
            own.pr_curve(tag, labels, matched_scores, step, protos.PR_THRESHOLDS)


def train_logs(logs: Optional[Mapping[str, object]]) -> Dict[str, object]:
    """The training values of Keras logs (validation's are ``val_*``)."""
    return {k: v for k, v in (logs or {}).items() if not k.startswith("val_")}


class FitPoints:
    """The due points of one callback's fits (see the module docstring). ``own``: the callback,
    through which activations are logged as the user's own values would be."""

    def __init__(self, life: RunLife, images: FitImages, extra_hparams: Mapping[str, object], activations, own):
        self.life, self.options, self.images = life, life.options, images
        self.extra_hparams, self.activations, self.own = dict(extra_hparams), activations, own
        self.due = DuePlan(self.options, with_images=self.options.log_train_images and images.has(schema.TRAIN))
        self.clock = EpochClock()
        self.probe: Optional[GradProbe] = None
        self.model = None
        self.params: Mapping[str, object] = {}
        self.window = 1  # steps_per_execution
        self.fetch: Optional[measure.MetricsFetch] = None
        self.returns: Optional[StepReturns] = None  # a custom train_step's own values (step_returns)
        self.samples_seen = 0
        self.fit_start = (0, 0)  # (step, samples counted) when this fit began
        self.hparams_due = False  # a fresh run's hparams, written at its first logged point
        self.first_block = True

    def begin(self, model, params: Mapping[str, object], probe: GradProbe, window: int, step: int,
              returns: Optional[StepReturns]) -> None:
        """A fit begins at ``step`` (its data may be of another length than the last fit's)."""
        self.model, self.params, self.probe, self.window, self.returns = model, params, probe, window, returns
        self.due.reset(step)
        self.first_block = True  # its trace tells whether the model makes tf.summary calls
        self.clock = EpochClock()
        self.samples_seen = int(probe.samples.numpy())
        self.fit_start = (step, self.samples_seen)

    def plan_block(self, end: int, size: int):
        """(gradients due, summaries to record) for the ``size`` steps after ``end``."""
        grads_due, record = self.due.plan_block(end, size, grads=self.probe is not None)
        if self.probe is not None and not (self.probe.summaries_in_graph or self.first_block):
            record = [False] * size  # the traced graph makes no tf.summary call: nothing to arm for it
        self.first_block = False
        return grads_due, record

    def write_hparams_once(self, step: int) -> None:
        if not self.hparams_due or self.probe is None:
            return
        self.hparams_due = False
        start_step, start_samples = self.fit_start
        done = step - start_step
        samples = int(self.probe.samples.numpy()) - start_samples
        batch_size = samples // done if done > 0 and samples > 0 else None
        self.life.run.hparams(self.life.hparams(keras_hparams(self.model, self.params, self.window, batch_size),
                                                self.extra_hparams))

    def observe(self, end: int, epoch_logs: Optional[Mapping[str, object]]) -> None:
        """Write what was due up to iteration ``end``, which has just completed."""
        run = self.life.run
        self.due.observed = end
        step = self.due.take_scalars(end)
        if step is not None:
            self.write_scalars(step, end, epoch_logs)
        if self.due.grads_due_by(end) and self.probe is not None:
            names = self.probe.layer_names
            step = None
            for row in self.probe.rows(self.due.last_norm_row, end):  # one small transfer
                step = int(round(row[0]))
                run.grad_norms(step, float(row[1]), dict(zip(names, row[3:3 + len(names)])),
                               pre_clip=float(row[2]) if row[2] >= 0 else None)
                self.due.norms_read_through(step)
            if self.activations is not None and step is not None:
                self.activations.log(self.own, self.model, step)  # the model as it is now, at the newest norm's step
        step = self.due.take_image(end)
        if step is not None:
            self.images.log(self.life, self.model, schema.TRAIN, step)

    def write_scalars(self, step: int, end: int, epoch_logs: Optional[Mapping[str, object]]) -> None:
        opts, run = self.options, self.life.run
        self.write_hparams_once(end)
        if epoch_logs is not None:
            logs = dict(epoch_logs)
        elif self.returns is not None:  # a custom train_step: what it returned, as Keras' own callback logs
            returned = self.returns.take(end - self.clock.base - 1)  # the 0-based batch that ended at `end`
            if returned is None:
                run.warn_once("callback", "returns", f"the train step's values for step {step} never "
                              "reached on_train_batch_end; its losses and metrics are skipped there")
            logs = train_logs(returned or {})
        else:
            if self.fetch is None:
                self.fetch = measure.MetricsFetch.for_model(self.model, with_lr=opts.log_lr)
            logs = train_logs(self.fetch(step - 1))
        lr = logs.pop(LR_KEY, None)
        scale = logs.pop(SCALE_KEY, None)
        optimizer = self.model.optimizer
        if not opts.log_lr:
            lr = None
        elif lr is None:  # logs that came with on_epoch_end: no LR fetched with them
            lr = measure.learning_rate_at(applying_optimizer(optimizer), step - 1)
        if scale is None and getattr(optimizer, "dynamic_scale", None) is not None:
            scale = optimizer.dynamic_scale
        samples = None
        if opts.log_speed:  # over the iterations since the last point, up to ``end`` where it is observed
            counted = int(self.probe.samples.numpy()) if self.probe is not None else 0
            samples, self.samples_seen = counted - self.samples_seen, counted
        self.life.write_step(step, logs, learning_rates={"0": lr} if lr is not None else None,
                             epoch=self.clock.at(step, self.params.get("steps")), loss_scale=scale,
                             speed_at=end, samples=samples)

    def epoch_end(self, epoch: int, step: int, logs: Mapping[str, object]) -> None:
        """After epoch ``epoch`` (0-based), at ``step``: validation metrics and images, weight
        histograms. No flush: the writer thread flushes every few seconds, and waiting for it
        would put the histogram work back on the training thread."""
        opts, run = self.options, self.life.run
        if opts.log_val_metrics:
            run.metrics(schema.VAL, step, {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")})
        if opts.log_val_images and self.images.has(schema.VAL) and any(k.startswith("val_") for k in logs):
            self.images.log(self.life, self.model, schema.VAL, step)
        if opts.log_weight_hist and opts.weight_policy.should_log(epoch + 1):
            variables = list(self.model.trainable_variables)
            picked, names = measure.pick_layers(variables, opts.max_layers_to_log, self.model.name)
            run.histograms(schema.weights_histogram, step, measure.weight_arrays(variables, picked, names))
