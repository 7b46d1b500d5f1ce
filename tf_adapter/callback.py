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

Intervals are due points (:mod:`tf_adapter.fit_points`): gradient norms are measured in the graph
at the due step itself; loss, metrics, LR and epoch come from Keras' running results, which exist
only at the end of a ``steps_per_execution`` block, labelled with the block's last due step.
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence, TYPE_CHECKING, Tuple

import keras
from tf_adapter import measure
from tf_adapter.node_link import node_link
from tf_adapter.fit_points import FitImages, FitPoints, train_logs
from tf_adapter.graph import write_model_graph
from tf_adapter.layer_features import LayerActivations, LayerEmbedding
from tf_adapter.model_summaries import ModelSummaries
from tf_adapter.profiler import StepMarkers, step_profiler
from tf_adapter.probe import GradProbe, probe_for
from tf_adapter.sink import TFSummarySink
from tf_adapter.step_returns import StepReturns, overrides_train_step
from tf_adapter.model_records import keras_config_text, write_header
from unitb.life.lifecycle import LivesARun, RunLife
from unitb.life.options import LogOptions, show_options
from unitb.life.own_values import OwnValuesAPI
from unitb.store.run_location import StoreOptions
from unitb.notices import default_warn

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Unpack

    from unitb.life.keywords import RunKeywords


class TFCallback(LivesARun, keras.callbacks.Callback, OwnValuesAPI):
    """unitb for Keras ``fit``. Parameters and defaults are those of the mmengine hook.

    ``image_data`` / ``val_image_data``: optional input batches (N x H x W x C) drawn as
    ``train/image`` (every ``train_image_interval`` steps) and ``val/image`` (after each
    validation); ``gt_keypoints`` / ``val_gt_keypoints`` are drawn green, and
    ``predict_keypoints(model, images) -> (keypoints N x K x 2, scores N x K)`` gives the
    model's predictions, drawn red where the score is at least ``kpt_thr``.

    A fresh model (step 0) into a ``logdir`` that holds another run writes to ``logdir-2``
    (``-3``...) instead, and warns once; a model that resumes (step > 0) continues the newest
    version and sets aside the steps a crashed run wrote after its checkpoint
    (:mod:`unitb.folder.versions`, :mod:`unitb.folder.set_aside`). ``run_dir`` is the folder chosen.

    ``logdir`` may be a URL (``s3://bucket/runs/exp``, ``gs://…``): the run is written to a
    local spool and uploaded in the background (``storage_options``, ``spool_dir``,
    ``upload_interval``, ``upload_timeout``, ``max_spool_mb``: :mod:`unitb.store.run_location`).

    Cost: work happens only around due points (:mod:`tf_adapter.fit_points`): one small host
    transfer per logged block; ``on_train_batch_end`` only hands a custom ``train_step``'s values
    over, on whatever thread Keras calls it.

    Args:
        logdir: The run's folder or URL.
        image_data: Training inputs (N x H x W x C) drawn as ``train/image``.
        gt_keypoints: Their ground-truth keypoints (N x K x 2 pixels), drawn green.
        val_image_data: Validation inputs drawn as ``val/image`` after each validation.
        val_gt_keypoints: Their ground truth; with ``predict_keypoints`` also the keypoint PR curves.
        predict_keypoints: ``predict_keypoints(model, images) -> (keypoints N x K x 2, scores N x K)``.
        skeleton: Pairs of keypoint indices joined by a line.
        hparams: Your own hyperparameters, for the HPARAMS tab.
        embedding_data: ``(images, labels)`` whose ``embedding_layer`` features go to the PROJECTOR.
        predict_heatmaps: ``predict_heatmaps(model, images) -> N x h x w x K``, drawn as ``{split}/heatmap``.
        **kwargs: The options every entry point takes (``scalar_interval``, ``log_graph``, …);
            Keras' ``profile_batch`` is taken as ``profile_steps``.

    Raises:
        ValueError: An option with a bad value or an unknown name (with a "did you mean").
    """

    async_safe = True

    def __init__(self, logdir: str = "runs/keras-fit", image_data: Optional[ArrayLike] = None,
                 gt_keypoints: Optional[ArrayLike] = None, val_image_data: Optional[ArrayLike] = None,
                 val_gt_keypoints: Optional[ArrayLike] = None,
                 predict_keypoints: Optional[Callable] = None, skeleton: Optional[Sequence] = None,
                 hparams: Optional[Mapping[str, object]] = None,
                 embedding_data: Optional[Tuple[ArrayLike, Sequence]] = None,
                 predict_heatmaps: Optional[Callable] = None, **kwargs: Unpack[RunKeywords]) -> None:
        super().__init__()
        if "profile_batch" in kwargs:  # Keras' TensorBoard callback's name for it
            if "profile_steps" in kwargs:
                raise ValueError("TFCallback: give profile_steps or profile_batch (its Keras name), not both")
            kwargs["profile_steps"] = kwargs.pop("profile_batch")
        self.life = RunLife("TFCallback", "tensorflow-keras", kwargs, measure.device_peak_mb, is_chief=measure.is_chief,
                            node_link=node_link)
        self.store, self.options = self.life.store, self.life.options
        self.logdir = self.life.logdir(logdir)
        # embedding_layer's inputs: validation images x, or (x, labels) for the points' labels.
        self.embedding = LayerEmbedding(self.options.embedding_layer, embedding_data) \
            if self.options.embedding_layer else None
        self.activations = LayerActivations(self.options.activation_layers, image_data) \
            if self.options.activation_layers else None
        self.images = FitImages(image_data, gt_keypoints, val_image_data, val_gt_keypoints, predict_keypoints,
                                predict_heatmaps, skeleton)
        self.points = FitPoints(self.life, self.images, hparams or {}, self.activations, own=self)
        self._chief = True
        self._probe: Optional[GradProbe] = None
        self._fit_open = False
        self._window = 1  # steps_per_execution
        self._model_summaries = ModelSummaries()
        self._markers = StepMarkers()  # the profiled steps, marked for the PROFILE tab's step time

    def _own_closed(self):
        return "TFCallback writes during fit(): log_* was called outside one" if self._chief else None

    def _own_target(self):
        """Your own values land at the iterations completed so far (read from the graph)."""
        if self.run is None or self._probe is None:
            return None, 0
        return self.run, int(self._probe.counter.numpy())

    # ------------------------------------------------------------------ set-up
    def on_train_begin(self, logs=None) -> None:
        self._chief = self.life.chief()
        if not self._chief:
            self.life.report_node()
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
            # A model that continues goes on in the folder this callback chose before; a fresh
            # one starts from the folder the user named (and its next free version).
            folder = self.run_dir if (step > 0 and self.run_dir) else self.logdir
            run = self.life.open_in_training(folder, step, TFSummarySink, scope="fit")
            if run is None:  # a live writer holds the folder a resume continues, or it cannot be opened
                return
            try:
                if step == 0:
                    write_header(run, self.options, model, config_text=keras_config_text(model, self.params or {}))
                else:
                    write_header(run, self.options, model, at_start=False)
                self.points.hparams_due = step == 0
                if self.options.log_graph and step == 0:
                    write_model_graph(run.sink, model, run.warn_once)
            except Exception as exc:
                default_warn(f"TFCallback: could not open {folder} ({exc}); logging is off")
                self.life.close_writer()
                return
        self.points.begin(model, self.params or {}, self._probe, self._window, step,
                          StepReturns() if overrides_train_step(model) else None)
        self.life.speed.start(step)
        if not self.life.profiling():  # one window for the callback's run, over all its fits
            self.life.start_profiler(step_profiler, self.run.sink.logdir)
        try:  # tf.summary calls in the model and its train step land in this run (model_summaries)
            self._model_summaries.enter(model, self._probe, self.run.sink.logdir)
        except Exception as exc:
            self.run.warn_once("setup", "model-summaries", f"tf.summary calls inside the model are not recorded "
                               f"({type(exc).__name__}: {exc})")

    # ------------------------------------------------------------------ batches
    # Keras may call on_train_batch_end on its dispatch thread: this one only hands the values
    # over (StepReturns), so every other callback keeps that thread.
    async_safe = True

    def on_train_batch_end(self, batch, logs=None) -> None:
        returns = self.points.returns
        if returns is not None:
            returns.put(batch, logs)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if not self._chief:
            return
        if not self._fit_open:
            self._begin_fit(epoch)
        if self.points.returns is not None:
            self.points.returns.clear()
        if self.run is not None and self._probe is not None:
            self.points.clock.begin(epoch, int(self._probe.counter.numpy()))  # one read per epoch

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if self.run is None:
            return
        end = self.points.clock.base + batch
        if self.points.due.due_by(end):
            self._guard(lambda: self.points.observe(end, None))
        size = self._window
        steps = (self.params or {}).get("steps")
        if steps:
            size = max(1, min(size, int(steps) - batch))
        if self.life.profiling():
            self._markers.end()
        if self.life.before_block(end, end + 1, end + size):
            self._markers.begin(end + 1)
        grads_due, record = self.points.plan_block(end, size)
        if self._probe is not None:
            if any(grads_due) or any(record):
                self._probe.arm(end, grads_due, record)  # the graph measures / records at exactly these
            else:
                self._probe.disarm()

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except FloatingPointError:
            raise
        except Exception as exc:
            self.run.warn_once("callback", type(exc).__name__, f"logging failed ({exc}); training goes on")

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
        self.points.clock.end(step, (self.params or {}).get("steps"))  # data of unknown length: now it is known
        if self.life.profiling():
            self._markers.end()
        self.life.after_step(step)

        self._guard(lambda: self.points.write_hparams_once(step))
        # The epoch's last block: its train values come with the epoch's logs.
        self._guard(lambda: self.points.observe(step, train_logs(logs)))
        try:
            self.points.epoch_end(epoch, step, logs)
            if self.embedding is not None and self.options.weight_policy.should_log(epoch + 1):
                self.embedding.log(self, self.model, step)
        except FloatingPointError:
            raise
        except Exception as exc:
            self.run.warn_once("callback", type(exc).__name__, f"epoch logging failed ({exc}); training goes on")

    def on_train_end(self, logs=None) -> None:
        """Close this fit's writer (and its thread); a later fit() opens a new event file
        in the same run folder and continues at the step the model is at."""
        self._model_summaries.exit()
        if self.life.profiling():
            self._markers.end()
        self.life.stop_tracing()  # a fit that ends inside the window writes what it traced
        if self._probe is not None:
            self._probe.fit_ended()
        self._fit_open = False
        self.life.close_writer(wait_for_upload=False)  # uploads and backends go on in the background

    def close(self) -> None:
        """Close the run after the last ``fit``: a URL run makes its last upload now (else at the
        interpreter's exit) and the backends catch up."""
        self.life.close()


show_options(TFCallback.__init__, LogOptions, StoreOptions)
