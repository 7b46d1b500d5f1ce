"""``unitb.TFCallback``: ``model.fit(callbacks=[unitb.TFCallback("runs/keras")])``.

Writes the unitb schema with ``tf.summary`` into ONE run directory (train and val told
apart by tag prefix, unlike Keras' ``train/`` + ``validation/`` sub-runs). The step is
``optimizer.iterations`` after the update, so a second or resumed ``fit()`` continues the
curves (Keras' own callback restarts its batch step at 0, tensorflow/tensorflow#45274).

Gradient norms are computed in-graph from the gradients the real train step hands to the
optimizer (no extra forward/backward pass): ``optimizer.apply`` is wrapped so that, on
logging steps only (a ``tf.cond`` on a flag armed from Python), the global norm and the
selected layers' norms land in one variable, read with a single transfer after the batch.
"""
from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

import keras
from tf_adapter import measure
from tf_adapter.session import check_logdir, open_run, render_images, write_header
from unitb import schema
from unitb.layers import unique_names
from unitb.options import LogOptions
from unitb.run_logger import RunLogger


SLOTS = 64  # ring of per-step gradient-norm rows: a logging job may lag the graph by this many steps
LR_KEY = measure.MetricsFetch.LR  # the fetched LR travels with the logs under a key no metric can have


class TFCallback(keras.callbacks.Callback):
    """unitb for Keras ``fit``. Parameters and defaults are those of the mmengine hook.

    ``image_data`` / ``val_image_data``: optional input batches (N x H x W x C) drawn as
    ``train/image`` (every ``train_image_interval`` steps) and ``val/image`` (after each
    validation); ``gt_keypoints`` / ``val_gt_keypoints`` are drawn green, and
    ``predict_keypoints(model, images) -> (keypoints N x K x 2, scores N x K)`` gives the
    model's predictions, drawn red where the score is at least ``kpt_thr``.

    Cost: the callback does not override ``on_train_batch_end``, so Keras keeps its fast
    path (no per-batch conversion of the logs to numpy for our sake). Work happens only
    around logging steps: the step is armed in ``on_train_batch_begin`` and read back at
    the next batch's begin (or at the epoch's end), from the model's metric results and
    the step's row of gradient norms — one small host transfer per logged step.
    """

    async_safe = True

    def __init__(self, logdir: str = "runs/keras-fit", image_data=None, gt_keypoints=None,
                 val_image_data=None, val_gt_keypoints=None,
                 predict_keypoints: Optional[Callable] = None, skeleton: Optional[Sequence] = None,
                 hparams: Optional[Mapping[str, object]] = None, **kwargs):
        super().__init__()
        self.options = LogOptions.from_kwargs("TFCallback", kwargs)
        self.logdir = check_logdir(logdir)
        if predict_keypoints is not None and not callable(predict_keypoints):
            raise ValueError("predict_keypoints must be callable(model, images) -> (keypoints, scores)")
        self.image_data = image_data
        self.gt_keypoints = gt_keypoints
        self.val_image_data = val_image_data
        self.val_gt_keypoints = val_gt_keypoints
        self.predict_keypoints = predict_keypoints
        self.skeleton = skeleton
        self.extra_hparams = dict(hparams or {})
        self.run: Optional[RunLogger] = None
        self._chief = True
        self._picked: Optional[list] = None
        self._layer_names: list = []
        self._norms: Optional[tf.Variable] = None
        self._armed_var: Optional[tf.Variable] = None
        self._armed = False
        self._wrapped = None
        self._steps_per_epoch: Optional[int] = None
        self._epoch_base = 0
        self._pending: Optional[tuple] = None  # (step, batch) of a logging step not yet written
        self._fetch: Optional[measure.MetricsFetch] = None

    # ------------------------------------------------------------------ set-up
    def on_train_begin(self, logs=None) -> None:
        self._chief = measure.is_chief()
        if not self._chief:
            return
        model = self.model
        step = self._step()
        if self.run is None:
            try:
                self.run = open_run(self.logdir, self.options, resume_step=step)
                if step == 0:
                    write_header(self.run, self.options, model, hparams=self._hparams())
            except Exception as exc:
                tf.get_logger().warning(f"unitb: could not open {self.logdir} ({exc}); logging is off")
                self.run = None
                return
        self._steps_per_epoch = (self.params or {}).get("steps")
        if self.options.log_grad_norm:
            self._install_grad_probe()

    def _hparams(self) -> Dict[str, object]:
        opt = self.model.optimizer
        values: Dict[str, object] = {"framework": "tensorflow-keras", "optimizer": type(opt).__name__}
        lr = measure.learning_rate_at(opt, int(opt.iterations.numpy()))
        if lr is not None:
            values["learning_rate"] = lr
        params = self.params or {}
        if params.get("steps") and params.get("epochs"):
            values["max_steps"] = int(params["steps"]) * int(params["epochs"])
        values.update(self.extra_hparams)
        return values

    def _install_grad_probe(self) -> None:
        optimizer = self.model.optimizer
        if self._wrapped is optimizer:
            return
        shared = getattr(optimizer, "_unitb_grad_probe", None)
        if shared is not None:
            # An earlier TFCallback wrapped this optimizer, and Keras keeps the train function it
            # traced: that graph writes the earlier ring, so read that one (and its layer pick).
            self._norms, self._armed_var, self._picked, self._layer_names = shared
            self._armed = bool(self._armed_var.numpy())
            self._wrapped = optimizer
            return
        variables = list(self.model.trainable_variables)
        if not variables:
            return
        self._picked, self._layer_names = measure.pick_layers(variables, self.options.max_layers_to_log,
                                                              self.model.name)
        paths = unique_names([measure.variable_name(v) for v in variables])
        with tf.init_scope():
            # Each row: [step, applied global norm, pre-clip norm (-1: no clipping), layers...]
            self._norms = tf.Variable(tf.zeros((SLOTS, len(self._picked) + 3)), trainable=False,
                                      name="unitb_grad_norms")
            self._armed_var = tf.Variable(False, trainable=False, name="unitb_grad_armed")
        original_apply = optimizer.apply
        callback = self

        def apply(grads, trainable_variables=None):
            grads = list(grads)
            names = unique_names([measure.variable_name(v) for v in (trainable_variables or variables)])
            index = {n: i for i, n in enumerate(names)}
            picked = [index.get(paths[i], -1) for i in callback._picked]

            def measure_now():
                norms = measure.norms_in_graph(grads, [p for p in picked if p >= 0])
                applied, pre_clip = measure.clipped_global(grads, norms, optimizer)
                step = tf.cast(optimizer.iterations + 1, tf.float32)
                values = tf.concat([[step, applied, pre_clip if pre_clip is not None else -1.0], norms[1:]], 0)
                width = callback._norms.shape[1]
                if values.shape[0] < width:
                    values = tf.pad(values, [[0, width - values.shape[0]]])
                slot = tf.cast((optimizer.iterations + 1) % SLOTS, tf.int32)
                callback._norms.scatter_nd_update([[slot]], [values])
                return tf.constant(True)

            tf.cond(callback._armed_var, measure_now, lambda: tf.constant(False))
            return original_apply(grads, trainable_variables)

        optimizer.apply = apply
        optimizer._unitb_grad_probe = (self._norms, self._armed_var, self._picked, self._layer_names)
        self._wrapped = optimizer

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    # ------------------------------------------------------------------ batches
    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch = epoch
        if self.run is not None:
            self._epoch_base = self._step()

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if self.run is None:
            return
        if self._pending is not None:  # the previous step was a logging step and is done now
            pending, self._pending = self._pending, None
            self._guard(lambda: self._batch_end(*pending, self._fetch_train_logs(pending[0])))
        step = self._epoch_base + batch + 1
        opts = self.options
        if opts.scalar_policy.should_log(step) or opts.grad_policy.should_log(step) or (
                opts.log_train_images and self.image_data is not None and opts.train_image_policy.should_log(step)):
            self._pending = (step, batch)
        if self._armed_var is not None:
            armed = opts.grad_policy.should_log(step)
            if armed != self._armed:  # assign only on changes: two small writes per logged step
                self._armed_var.assign(armed)
                self._armed = armed

    def _fetch_train_logs(self, step: int) -> Dict[str, object]:
        """The metrics of ``step`` and its LR (under LR_KEY), read from TF in one traced call
        and one transfer: Keras' eager ``get_metrics_result`` alone costs ~0.4 ms a step.
        Nothing is read for a step logged only for its gradient norms or images."""
        if not self.options.scalar_policy.should_log(step):
            return {}
        if self._fetch is None:
            self._fetch = measure.MetricsFetch(self.model, with_lr=self.options.log_lr)
        return self._train_logs(self._fetch(step - 1))

    @staticmethod
    def _train_logs(logs: Mapping[str, object]) -> Dict[str, object]:
        return {k: v for k, v in (logs or {}).items() if not k.startswith("val_")}

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except FloatingPointError:
            raise
        except Exception as exc:
            self.run.warn_once("callback", type(exc).__name__, f"logging failed ({exc}); training goes on")

    def _batch_end(self, step: int, batch: int, logs: Mapping[str, object]) -> None:
        opts, run = self.options, self.run
        logs = dict(logs)
        if opts.scalar_policy.should_log(step):
            lr = logs.pop(LR_KEY, None)
            if opts.log_lr and lr is None:  # logs that came with on_epoch_end: no LR fetched with them
                lr = measure.learning_rate_at(self.model.optimizer, step - 1)
            if opts.log_loss:
                run.losses(step, logs.get("loss"), {k: v for k, v in logs.items() if k != "loss" and "loss" in k})
                run.metrics(schema.TRAIN, step, {k: v for k, v in logs.items() if "loss" not in k})
            if opts.log_lr:
                if lr is not None:
                    run.learning_rates(step, {"0": lr})
            if self._steps_per_epoch:
                run.epoch(step, self._epoch + (batch + 1) / self._steps_per_epoch)
        if self._norms is not None and opts.grad_policy.should_log(step):
            row = self._norms[step % SLOTS].numpy()  # one small transfer
            if int(round(float(row[0]))) == step:
                count = len(self._layer_names)
                layers = dict(zip(self._layer_names, row[3:3 + count].tolist()))
                run.grad_norms(step, float(row[1]), layers, pre_clip=float(row[2]) if row[2] >= 0 else None)
            else:
                run.warn_once("grad", "lag", f"gradient norms of step {step} were overwritten before they could "
                              f"be read (logging lagged more than {SLOTS} steps); skipped")
        if opts.log_train_images and self.image_data is not None and opts.train_image_policy.should_log(step):
            self._log_images(schema.TRAIN, step, self.image_data, self.gt_keypoints)

    def _log_images(self, split: str, step: int, data, gt_keypoints) -> None:
        """Predict here (the model is not thread-safe mid-training), render on the writer thread."""
        images = np.asarray(data)[: self.options.max_train_images]
        pred = scores = None
        if self.predict_keypoints is not None:
            pred, scores = self.predict_keypoints(self.model, images)
        self.run.image(split, step, render_images(self.options, images, gt_keypoints=gt_keypoints,
                                                  pred_keypoints=pred, pred_scores=scores, skeleton=self.skeleton))

    # ------------------------------------------------------------------ epochs
    _epoch = 0

    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.run is None:
            return
        logs = logs or {}
        if self._pending is not None:  # the epoch's last step: its train logs come with the epoch's
            pending, self._pending = self._pending, None
            self._guard(lambda: self._batch_end(*pending, self._train_logs(logs)))
        step = self._step()
        try:
            if self.options.log_val_metrics:
                val = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
                self.run.metrics(schema.VAL, step, val)
            if self.options.log_val_images and self.val_image_data is not None and any(
                    k.startswith("val_") for k in logs):
                self._log_images(schema.VAL, step, self.val_image_data, self.val_gt_keypoints)
            if self.options.log_weight_hist and self.options.weight_policy.should_log(epoch + 1):
                variables = list(self.model.trainable_variables)
                picked, names = measure.pick_layers(variables, self.options.max_layers_to_log, self.model.name)
                self.run.histograms(schema.weights_histogram, step, measure.weight_arrays(variables, picked, names))
            # No flush here: the writer thread flushes every few seconds; waiting for it
            # would put the histogram work back on the training thread.
        except FloatingPointError:
            raise
        except Exception as exc:
            self.run.warn_once("callback", type(exc).__name__, f"epoch logging failed ({exc}); training goes on")

    def on_train_end(self, logs=None) -> None:
        """Close this fit's writer (and its thread); a later fit() opens a new event file
        in the same run and continues at optimizer.iterations."""
        if self.run is not None:
            self.run.close()
            self.run = None
        if self._armed_var is not None and self._armed:
            self._armed_var.assign(False)
            self._armed = False

    def close(self) -> None:
        if self.run is not None:
            self.run.close()
            self.run = None
