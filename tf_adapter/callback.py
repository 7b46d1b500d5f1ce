"""``unitb.TFCallback``: ``model.fit(callbacks=[unitb.TFCallback("runs/keras")])``.

Writes the unitb schema with ``tf.summary`` into ONE run directory (train and val told
apart by tag prefix, unlike Keras' ``train/`` + ``validation/`` sub-runs). The step is
training iterations completed, counted in the graph (:mod:`tf_adapter.probe`), so a second
or resumed ``fit()`` continues the curves (Keras' own callback restarts its batch step at
0, tensorflow/tensorflow#45274), and mixed precision, gradient accumulation and
``steps_per_execution`` keep the same step axis.

The run is opened at the first ``on_epoch_begin`` of a fit, after every callback's
``on_train_begin``: ``BackupAndRestore`` restores the model there, in whatever order the
callbacks are listed, and the step unitb resumes from must be the restored one.

Intervals are due points: Keras hands control back once per block of
``steps_per_execution`` iterations. Gradient norms are measured in the graph at the due
step itself (or, with accumulation or a skipped loss-scaled update, at the first update
applied at or after it). Loss, metrics, LR and epoch come from Keras' running results, which
exist only at block ends: a block with due steps is written once, labelled with its last due
step, from the values at the end of that block.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

import keras
from tf_adapter import measure
from tf_adapter.due import DuePlan, EpochClock
from tf_adapter.graph import write_model_graph
from tf_adapter.layer_features import LayerActivations, LayerEmbedding
from tf_adapter.model_summaries import ModelSummaries
from tf_adapter.profiler import StepMarkers, step_profiler
from tf_adapter.probe import GradProbe, applying_optimizer, probe_for
from tf_adapter.sink import TFSummarySink
from tf_adapter.step_returns import StepReturns, overrides_train_step
from tf_adapter.session import (check_logdir, keras_config_text, keras_hparams, render_images,
                                write_header, write_heatmaps)
from unitb import schema
from unitb.folder.claim import FolderBusy
from unitb.write.hparams import merged
from unitb.log.lifecycle import RunLife
from unitb.log.options import LogOptions, show_options
from unitb.log.own_values import OwnValuesAPI
from unitb.store.remote_folder import StoreOptions
from unitb.write.writer import RunLogger
from unitb.notices import default_warn
from unitb.log.train_step import write_train_step

LR_KEY = measure.MetricsFetch.LR  # the fetched LR travels with the logs under a key no metric can have
SCALE_KEY = measure.MetricsFetch.LOSS_SCALE


class TFCallback(keras.callbacks.Callback, OwnValuesAPI):
    """unitb for Keras ``fit``. Parameters and defaults are those of the mmengine hook.

    ``image_data`` / ``val_image_data``: optional input batches (N x H x W x C) drawn as
    ``train/image`` (every ``train_image_interval`` steps) and ``val/image`` (after each
    validation); ``gt_keypoints`` / ``val_gt_keypoints`` are drawn green, and
    ``predict_keypoints(model, images) -> (keypoints N x K x 2, scores N x K)`` gives the
    model's predictions, drawn red where the score is at least ``kpt_thr``.

    A fresh model (step 0) into a ``logdir`` that holds another run writes to ``logdir-2``
    (``-3``...) instead, and warns once; a model that resumes (step > 0) continues the newest
    version and sets aside the steps a crashed run wrote after its checkpoint
    (:mod:`unitb.folder.versions`, :mod:`unitb.folder.resume`). ``run_dir`` is the folder chosen.

    ``logdir`` may be a URL (``s3://bucket/runs/exp``, ``gs://…``): the run is written to a
    local spool and uploaded in the background (``storage_options``, ``spool_dir``,
    ``upload_interval``, ``upload_timeout``, ``max_spool_mb``: :mod:`unitb.store.remote_folder`).

    Cost: the callback does not override ``on_train_batch_end``, so Keras keeps its fast
    path. Work happens only around due points: a mask is set before a block that holds
    one, and the block's results are read at the next block's begin (or at the epoch's
    end) — one small host transfer per logged block.
    """

    async_safe = True

    def __init__(self, logdir: str = "runs/keras-fit", image_data=None, gt_keypoints=None,
                 val_image_data=None, val_gt_keypoints=None,
                 predict_keypoints: Optional[Callable] = None, skeleton: Optional[Sequence] = None,
                 hparams: Optional[Mapping[str, object]] = None, embedding_data=None,
                 predict_heatmaps: Optional[Callable] = None, **kwargs):
        super().__init__()
        if "profile_batch" in kwargs:  # Keras' TensorBoard callback's name for it
            if "profile_steps" in kwargs:
                raise ValueError("TFCallback: give profile_steps or profile_batch (its Keras name), not both")
            kwargs["profile_steps"] = kwargs.pop("profile_batch")
        self.life = RunLife("TFCallback", kwargs, measure.device_peak_mb)
        self.store, self.options = self.life.store, self.life.options
        self.logdir = check_logdir(logdir, self.store, "TFCallback")
        # embedding_layer's inputs: validation images x, or (x, labels) for the points' labels.
        self.embedding = LayerEmbedding(self.options.embedding_layer, embedding_data) \
            if self.options.embedding_layer else None
        self.activations = LayerActivations(self.options.activation_layers, image_data) \
            if self.options.activation_layers else None
        if predict_keypoints is not None and not callable(predict_keypoints):
            raise ValueError("predict_keypoints must be callable(model, images) -> (keypoints, scores)")
        self.image_data = image_data
        self.gt_keypoints = gt_keypoints
        self.val_image_data = val_image_data
        self.val_gt_keypoints = val_gt_keypoints
        self.predict_keypoints = predict_keypoints
        if predict_heatmaps is not None and not callable(predict_heatmaps):
            raise ValueError("predict_heatmaps must be callable(model, images) -> heatmaps N x h x w x K")
        self.predict_heatmaps = predict_heatmaps  # train/heatmap, val/heatmap beside the images
        self.skeleton = skeleton
        self.extra_hparams = dict(hparams or {})
        self._mirror = None  # a URL run's uploader, still sending the last fit's events
        self._forwarder = None  # the backends' forwarder (unitb.backends.forwarder), kept from one fit to the next
        self._chief = True
        self._probe: Optional[GradProbe] = None
        self._fit_open = False
        self._window = 1  # steps_per_execution
        self._due = DuePlan(self.options, with_images=self.options.log_train_images and image_data is not None)
        self._clock = EpochClock()
        self._model_summaries = ModelSummaries()
        self._markers = StepMarkers()  # the profiled steps, marked for the PROFILE tab's step time
        self._fetch: Optional[measure.MetricsFetch] = None
        self._returns: Optional[StepReturns] = None  # a custom train_step's own values (step_returns)
        self._samples_seen = 0
        self._fit_start = (0, 0)  # (step, samples counted) when this fit began
        self._hparams_due = False  # a fresh run's hparams, written at its first logged point
        self._first_block = True

    @property
    def run(self) -> Optional[RunLogger]:
        """This fit's writer (None between fits)."""
        return self.life.run

    @property
    def run_dir(self) -> Optional[str]:
        """The folder (or URL) the run went to: ``logdir``, or its next free version."""
        return self.life.run_dir

    def _own_closed(self):
        return "TFCallback writes during fit(): log_* was called outside one" if self._chief else None

    def _own_target(self):
        """Your own values land at the iterations completed so far (read from the graph)."""
        if self.run is None or self._probe is None:
            return None, 0
        return self.run, int(self._probe.counter.numpy())

    @property
    def _layer_names(self) -> List[str]:
        return [] if self._probe is None else self._probe.layer_names

    # ------------------------------------------------------------------ set-up
    def on_train_begin(self, logs=None) -> None:
        self._chief = measure.is_chief()
        self._fit_open = False  # the run opens at the first epoch: after BackupAndRestore restored

    def _begin_fit(self, epoch: int) -> None:
        self._fit_open = True
        model = self.model
        steps = (self.params or {}).get("steps")
        self._window = max(1, int(getattr(model, "steps_per_execution", 1) or 1))
        try:
            self._probe = probe_for(model, self.options.max_layers_to_log, self._window)
            step = self._probe.sync(epoch * int(steps) if steps and epoch > 0 else 0)
        except Exception as exc:
            default_warn(f"TFCallback: could not attach to {type(model.optimizer).__name__} ({exc}); logging is "
                         "off for this fit")
            self._probe = None
            return
        if self._probe.window < self._window:
            default_warn(f"TFCallback: steps_per_execution grew to {self._window} after the first fit; gradient "
                         f"norms are measured in the first {self._probe.window} steps of a block")
        if self.run is None:
            try:
                # A model that continues goes on in the folder this callback chose before; a fresh
                # one starts from the folder the user named (and its next free version).
                folder = self.run_dir if (step > 0 and self.run_dir) else self.logdir
                self.life.open_folder(folder, step, TFSummarySink, forwarder=self._forwarder)
                self._forwarder = self.run.folder.forwarder
                if step == 0:
                    write_header(self.run, self.options, model, config_text=keras_config_text(
                        model, self.params or {}))
                self._hparams_due = step == 0
                if self.options.log_graph and step == 0:
                    write_model_graph(self.run.sink, model, self.run.warn_once)
            except FolderBusy as exc:  # a live writer holds the folder a resume continues
                self.life.refused(exc, "fit")
                self.life.close()
                return
            except Exception as exc:
                default_warn(f"TFCallback: could not open {self.logdir} ({exc}); logging is off")
                self.life.close()
                return
        self._returns = StepReturns() if overrides_train_step(model) else None
        self._due.reset(step)
        self._first_block = True  # its trace tells whether the model makes tf.summary calls
        self._clock = EpochClock()  # a new fit may bring data of another length
        self.life.speed.start(step)
        if self.life.profiler is None:  # one window for the callback's run, over all its fits
            self.life.start_profiler(step_profiler, self.run.sink.logdir)
        try:  # tf.summary calls in the model and its train step land in this run (model_summaries)
            self._model_summaries.enter(model, self._probe, self.run.sink.logdir)
        except Exception as exc:
            self.run.warn_once("setup", "model-summaries", f"tf.summary calls inside the model are not recorded "
                               f"({type(exc).__name__}: {exc})")
        self._samples_seen = int(self._probe.samples.numpy())
        self._fit_start = (step, self._samples_seen)

    def _write_hparams_once(self, step: int) -> None:
        """Keras tells callbacks no batch size: the hparams wait for the first logged point,
        when the samples counted in the graph give it."""
        if not self._hparams_due or self._probe is None:
            return
        self._hparams_due = False
        start_step, start_samples = self._fit_start
        done = step - start_step
        samples = int(self._probe.samples.numpy()) - start_samples
        batch_size = samples // done if done > 0 and samples > 0 else None
        self.run.hparams(merged(keras_hparams(self.model, self.params or {}, self._window, batch_size),
                                self.extra_hparams))

    # ------------------------------------------------------------------ batches
    # Keras may call on_train_batch_end on its dispatch thread: this one only hands the values
    # over (StepReturns), so every other callback keeps that thread.
    async_safe = True

    def on_train_batch_end(self, batch, logs=None) -> None:
        returns = self._returns
        if returns is not None:
            returns.put(batch, logs)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if not self._chief:
            return
        if not self._fit_open:
            self._begin_fit(epoch)
        if self._returns is not None:
            self._returns.clear()
        if self.run is not None and self._probe is not None:
            self._clock.begin(epoch, int(self._probe.counter.numpy()))  # one read per epoch

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if self.run is None:
            return
        end = self._clock.base + batch
        if self._due.due_by(end):
            self._guard(lambda: self._observe(end, None))
        size = self._window
        steps = (self.params or {}).get("steps")
        if steps:
            size = max(1, min(size, int(steps) - batch))
        if self.life.profiler is not None:
            self._markers.end()
            self.life.profiler.after_step(end)
            self.life.profiler.before_block(end + 1, end + size)
            if self.life.profiler.window.active:
                self._markers.begin(end + 1)
        grads_due, record = self._due.plan_block(end, size, grads=self._probe is not None)
        if self._probe is not None and not (self._probe.summaries_in_graph or self._first_block):
            record = [False] * size  # the traced graph makes no tf.summary call: nothing to arm for it
        self._first_block = False
        if self._probe is not None:
            if any(grads_due) or any(record):
                self._probe.arm(end, grads_due, record)  # the graph measures / records at exactly these
            else:
                self._probe.disarm()

    def _observe(self, end: int, epoch_logs: Optional[Mapping[str, object]]) -> None:
        """Write what was due up to iteration ``end``, which has just completed."""
        self._due.observed = end
        step = self._due.take_scalars(end)
        if step is not None:
            self._write_scalars(step, end, epoch_logs)
        if self._due.grads_due_by(end) and self._probe is not None:
            names = self._layer_names
            step = None
            for row in self._probe.rows(self._due.last_norm_row, end):  # one small transfer
                step = int(round(row[0]))
                self.run.grad_norms(step, float(row[1]), dict(zip(names, row[3:3 + len(names)])),
                                    pre_clip=float(row[2]) if row[2] >= 0 else None)
                self._due.norms_read_through(step)
            if self.activations is not None and step is not None:
                self.activations.log(self, self.model, step)  # the model as it is now, at the newest norm's step
        step = self._due.take_image(end)
        if step is not None:
            self._log_images(schema.TRAIN, step, self.image_data, self.gt_keypoints)

    def _write_scalars(self, step: int, end: int, epoch_logs: Optional[Mapping[str, object]]) -> None:
        opts, run = self.options, self.run
        self._write_hparams_once(end)
        if epoch_logs is not None:
            logs = dict(epoch_logs)
        elif self._returns is not None:  # a custom train_step: what it returned, as Keras' own callback logs
            returned = self._returns.take(end - self._clock.base - 1)  # the 0-based batch that ended at `end`
            if returned is None:
                self.run.warn_once("callback", "returns", f"the train step's values for step {step} never reached "
                                   "on_train_batch_end; its losses and metrics are skipped there")
            logs = self._train_logs(returned or {})
        else:
            if self._fetch is None:
                self._fetch = measure.MetricsFetch.for_model(self.model, with_lr=opts.log_lr)
            logs = self._train_logs(self._fetch(step - 1))
        lr = logs.pop(LR_KEY, None)
        scale = logs.pop(SCALE_KEY, None)
        optimizer = self.model.optimizer
        if not opts.log_lr:
            lr = None
        elif lr is None:  # logs that came with on_epoch_end: no LR fetched with them
            lr = measure.learning_rate_at(applying_optimizer(optimizer), step - 1)
        if scale is None and getattr(optimizer, "dynamic_scale", None) is not None:
            scale = optimizer.dynamic_scale
        speed = None
        if opts.log_speed:  # over the iterations since the last point, up to ``end`` where it is observed
            samples = int(self._probe.samples.numpy()) if self._probe is not None else 0
            speed = self.life.speed.point(end, samples=samples - self._samples_seen)
            self._samples_seen = samples
        write_train_step(run, opts, step, logs, learning_rates={"0": lr} if lr is not None else None,
                         epoch=self._clock.at(step, (self.params or {}).get("steps")), loss_scale=scale, speed=speed)

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

    def _log_images(self, split: str, step: int, data, gt_keypoints) -> None:
        """Predict here (the model is not thread-safe mid-training), render on the writer thread."""
        images = np.asarray(data)[: self.options.max_train_images]
        pred = scores = None
        if self.predict_keypoints is not None:
            pred, scores = self.predict_keypoints(self.model, images)
        self.run.image(split, step, render_images(self.options, images, gt_keypoints=gt_keypoints,
                                                  pred_keypoints=pred, pred_scores=scores, skeleton=self.skeleton))
        if self.predict_heatmaps is not None:
            write_heatmaps(self.run, self.options, split, step, images,
                           lambda: self.predict_heatmaps(self.model, images))

    def on_test_begin(self, logs=None) -> None:
        self.life.speed.pause()  # validation inside fit() is not training-step time

    def on_test_end(self, logs=None) -> None:
        self.life.speed.resume()

    # ------------------------------------------------------------------ epochs
    def on_epoch_end(self, epoch, logs=None) -> None:
        if self.run is None or self._probe is None:
            return
        logs = logs or {}
        step = int(self._probe.counter.numpy())
        self._clock.end(step, (self.params or {}).get("steps"))  # data of unknown length: now it is known
        if self.life.profiler is not None:
            self._markers.end()
            self.life.profiler.after_step(step)

        self._guard(lambda: self._write_hparams_once(step))
        # The epoch's last block: its train values come with the epoch's logs.
        self._guard(lambda: self._observe(step, self._train_logs(logs)))
        try:
            if self.options.log_val_metrics:
                val = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
                self.run.metrics(schema.VAL, step, val)
            if self.options.log_val_images and self.val_image_data is not None and any(
                    k.startswith("val_") for k in logs):
                self._log_images(schema.VAL, step, self.val_image_data, self.val_gt_keypoints)
            if self.embedding is not None and self.options.weight_policy.should_log(epoch + 1):
                self.embedding.log(self, self.model, step)
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
        in the same run folder and continues at the step the model is at."""
        self._model_summaries.exit()
        if self.life.profiler is not None:
            self._markers.end()
            self.life.profiler.close()  # a fit that ends inside the window writes what it traced
        if self._probe is not None:
            self._probe.fit_ended()
        self._fit_open = False
        if self.run is not None:
            self._mirror = self.run.folder.mirror
            self.life.close_writer(wait_for_upload=False)  # uploads and backends go on in the background

    def close(self) -> None:
        """Close the writer; a URL run makes its last upload now (else at the interpreter's exit)."""
        self.life.close()
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        if self._mirror is not None:
            self._mirror.close()
            self._mirror = None


show_options(TFCallback.__init__, LogOptions, StoreOptions)
