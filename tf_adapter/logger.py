"""``unitb.TFLogger``: the unitb schema for custom TF training loops (a YOLO-style loop).

    manager = unitb.CheckpointManager(ckpt, "ckpt", save_every=50)
    start = manager.restore_or_initialize()
    logger = unitb.TFLogger("runs/yolo", checkpoint_manager=manager)
    for step in range(start + 1, total + 1):
        losses, grads = train_step(images, targets)      # your tf.function
        ckpt.step.assign_add(1)
        logger.log_train_step(step, losses=losses, learning_rate=lr, grads=grads,
                              variables=model.trainable_variables)
        manager.maybe_save()

``log_train_step`` also works inside a ``tf.function``: then it emits ``tf.summary`` ops
under ``tf.summary.record_if`` driven by the same interval policy.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, TYPE_CHECKING, Union

import tensorflow as tf

from tf_adapter import measure
from tf_adapter.node_link import node_link
from tf_adapter.graph import write_model_graph
from tf_adapter.loop_step import LoopGradients, write_in_graph
from tf_adapter.profiler import step_profiler
from tf_adapter.sink import TFSummarySink
from tf_adapter.model_records import render_images, write_header, write_heatmaps
from unitb import schema
from unitb.life.lifecycle import LivesARun, RunLife, check_start_step
from unitb.life.options import LogOptions, show_options
from unitb.life.own_values import OwnValuesAPI
from unitb.store.run_location import StoreOptions
from unitb.write.writer import RunLogger

if TYPE_CHECKING:
    import keras
    from numpy.typing import ArrayLike
    from typing_extensions import Unpack

    from tf_adapter.checkpoint import CheckpointManager
    from unitb.life.keywords import RunKeywords


class TFLogger(LivesARun, OwnValuesAPI):
    """Log a custom TF loop. Losses: ``{'total': ..., 'coord': ..., ...}`` ('total' or
    'loss' -> ``train/loss``, the others -> ``train/loss/{name}``). Only the chief writes.

    The writer opens on first use, after ``checkpoint_manager.restore_or_initialize()``,
    so a resumed run first drops the steps the interrupted run wrote after its checkpoint.
    ``start_step`` does the same without a manager.

    Args:
        logdir: The run's folder or URL.
        checkpoint_manager: A :class:`~tf_adapter.checkpoint.CheckpointManager`: the run continues
            from the step it restored, and is flushed before each save.
        start_step: The step to continue from, without a manager (None: 0, or the manager's).
        model: The Keras model whose size, graph and config are logged.
        config: Text for the TEXT tab (None: the model's JSON config).
        hparams: Your own hyperparameters, for the HPARAMS tab.
        skeleton: Pairs of keypoint indices joined by a line in the images.
        **kwargs: The options every entry point takes (``scalar_interval``, ``log_graph``, …).

    Raises:
        ValueError: An option with a bad value or an unknown name (with a "did you mean").
    """

    def __init__(self, logdir: str, checkpoint_manager: Optional[CheckpointManager] = None,
                 start_step: Optional[int] = None, model: Optional[keras.Model] = None, config: Optional[str] = None,
                 hparams: Optional[Mapping[str, object]] = None,
                 skeleton: Optional[Sequence] = None, **kwargs: Unpack[RunKeywords]) -> None:
        self.life = RunLife("TFLogger", "tensorflow-loop", kwargs, measure.device_peak_mb, is_chief=measure.is_chief,
                            node_link=node_link)
        self.store, self.options = self.life.store, self.life.options
        self.logdir = self.life.logdir(logdir)
        start_step = check_start_step(start_step, allow_none=True)
        self.checkpoint_manager = checkpoint_manager
        self.start_step = start_step
        self.model = model
        self._model_name = getattr(model, "name", None)
        self.config = config
        self.hparams = dict(hparams or {})
        self.skeleton = skeleton
        self.enabled = self.life.chief()
        self._opened = False
        self._gradients = LoopGradients(self.options, self._model_name)
        self.life.step = start_step or 0  # the last step logged eagerly: where log_scalar & co. land
        self._closed = False
        if checkpoint_manager is not None:
            checkpoint_manager.attach(self)

    # ------------------------------------------------------------------ writer
    @property
    def run(self) -> Optional[RunLogger]:
        """The run's writer, opened at first use (after a checkpoint manager restored the step)."""
        if not self._opened and self.enabled and not self._closed:
            self._opened = True
            # Eager even when the first step runs inside a tf.function: a write made while it is
            # traced would become an op of the graph, and be made again at every step.
            with tf.init_scope():
                self._open()
        return self.life.run

    def _open(self) -> None:
        resume_step = self.start_step
        if resume_step is None and self.checkpoint_manager is not None:
            resume_step = self.checkpoint_manager.restored_step
        run = self.life.open_in_training(self.logdir, resume_step, TFSummarySink)
        if run is None:  # opened inside the training loop: one warning, training goes on
            self.enabled = False
            return
        self.life.start_profiler(step_profiler, run.sink.logdir, at_step=resume_step or 0)
        if not resume_step:
            hparams = self.life.hparams({"model": self._model_name} if self._model_name else None, self.hparams)
            write_header(run, self.options, self.model, self.config, hparams)
            if self.options.log_graph and self.model is not None:
                write_model_graph(run.sink, self.model, run.warn_once)
        else:
            write_header(run, self.options, self.model, at_start=False)

    def _ready(self) -> bool:
        """Whether this process logs, opening the run at first use (a resume refused by a live
        writer in the folder turns logging off: :class:`~unitb.folder.claim.FolderBusy`)."""
        if not self.enabled:
            self.life.report_node()  # once the strategy is up: this machine's figures, for the chief
            return False
        return self.run is not None

    def _own_closed(self):
        return "TFLogger: log_* after close()" if self.enabled else None

    def _own_target(self):
        if self.enabled and self.life.step == 0 and self.checkpoint_manager is not None:
            self.life.step = int(self.checkpoint_manager.restored_step or 0)
        return (self.run if self.enabled and not self._closed else None), self.life.step

    # ------------------------------------------------------------------ training
    def log_train_step(self, step: Union[int, tf.Tensor], losses: Optional[Mapping[str, object]] = None,
                       learning_rate: Any = None,
                       grads: Optional[Sequence] = None, variables: Optional[Sequence] = None,
                       metrics: Optional[Mapping[str, object]] = None, epoch: Any = None, loss_scale: Any = None,
                       batch_size: Optional[int] = None, data_time: Optional[float] = None) -> None:
        """Log one optimizer step, eagerly or inside the loop's ``tf.function``.

        Args:
            step: Optimizer steps done, counted from 1 (a tensor inside ``tf.function``).
            losses: ``{'total': ..., 'coord': ..., ...}``: ``total`` (or ``loss``) is ``train/loss``,
                the others ``train/loss/{name}``.
            learning_rate: The optimizer's learning rate (a variable or a schedule's value).
            grads: The step's gradients, for the norms.
            variables: The variables they belong to (their names label the per-layer norms).
            metrics: Training metrics, ``train/{name}``.
            epoch: The fractional epoch, ``train/epoch``.
            loss_scale: Under mixed precision, the scale the gradients carry (a Keras
                ``LossScaleOptimizer``'s ``dynamic_scale`` when ``grads`` are of ``scale_loss(loss)``):
                the norms are of the unscaled gradients, the scale is ``train/loss_scale``, and
                non-finite scaled gradients — an update the scaler skips — are not an anomaly.
            batch_size: Samples this step, for ``train/throughput`` (eager only).
            data_time: Seconds the loop waited for this batch, ``train/time/data`` (eager only).
        """
        if not self._ready():
            return
        if loss_scale is not None and grads is not None:
            grads = LoopGradients.unscaled(grads, loss_scale)
        if not tf.executing_eagerly():
            write_in_graph(self.run, self.options, self._gradients, step, losses or {}, learning_rate, grads,
                           variables, loss_scale, metrics or {}, epoch, reached=self.life.reached)
            return
        step = int(step)
        opts, run = self.options, self.run
        self.life.after_step(step)
        if batch_size:
            self.life.speed.add_samples(int(batch_size))
        if data_time is not None:
            self.life.speed.add_data_time(float(data_time))
        if self.life.step_due(step):
            self.life.write_step(step, losses={k: _host(v) for k, v in (losses or {}).items()},
                                 metrics={k: _host(v) for k, v in (metrics or {}).items()},
                                 learning_rates={"0": _host(learning_rate)} if learning_rate is not None else None,
                                 epoch=_host(epoch) if epoch is not None else None,
                                 loss_scale=_host(loss_scale) if loss_scale is not None else None)
        if opts.log_grad_norm and grads is not None and opts.grad_policy.should_log(step):
            self._gradients.write_eager(run, step, grads, variables, loss_scale)

    # ------------------------------------------------------------------ the rest
    def log_val(self, step: int, metrics: Mapping[str, object]) -> None:
        """Log a validation's metrics as ``val/{name}``, on the training step axis.

        Args:
            step: Training steps done when the validation ran.
            metrics: ``{"loss": ..., "mAP": ...}``: numbers or scalar tensors.
        """
        if self.options.log_val_metrics and self._ready():
            self.run.metrics(schema.VAL, int(step), {k: _host(v) for k, v in metrics.items()})

    def log_weights(self, step: int, epoch: int, variables: Sequence) -> None:
        """Log weight histograms after a completed epoch, every ``weight_hist_interval`` epochs.

        Args:
            step: Training steps done.
            epoch: Epochs done, counted from 1.
            variables: The variables to draw (at most ``max_layers_to_log``, spread over them).
        """
        if self.options.log_weight_hist and self.options.weight_policy.should_log(int(epoch)) and self._ready():
            variables = list(variables)
            picked, names = measure.pick_layers(variables, self.options.max_layers_to_log, self._model_name)
            self.run.histograms(schema.weights_histogram, int(step), measure.weight_arrays(variables, picked, names))

    def log_images(self, step: int, images: ArrayLike, split: str = "train", gt_keypoints: Optional[ArrayLike] = None,
                   pred_keypoints: Optional[ArrayLike] = None, pred_scores: Optional[ArrayLike] = None,
                   gt_boxes: Optional[Sequence] = None, pred_boxes: Optional[Sequence] = None,
                   heatmaps: Optional[ArrayLike] = None) -> None:
        """Log images with ground truth (green) and predictions (red) drawn over them.

        Args:
            step: Training steps done.
            images: N x H x W x C.
            split: ``"train"`` or ``"val"``: the tag is ``{split}/image``.
            gt_keypoints: N x K x 2 pixel coordinates.
            pred_keypoints: N x K x 2 pixel coordinates.
            pred_scores: N x K; keypoints under ``kpt_thr`` are not drawn.
            gt_boxes: xyxy pixel boxes, one list per image.
            pred_boxes: xyxy pixel boxes, one list per image.
            heatmaps: N x h x w x K, the model's output: also ``{split}/heatmap``, laid over the images.
        """
        if not self._ready():
            return
        if split == "train" and not self.options.train_image_policy.should_log(int(step)):
            return
        self.run.image(split, int(step), render_images(self.options, images, gt_keypoints, pred_keypoints,
                                                       pred_scores, gt_boxes, pred_boxes, self.skeleton))
        if heatmaps is not None:
            write_heatmaps(self.run, self.options, split, int(step), images, lambda: _host(heatmaps))

    def flush(self) -> None:
        """Write out everything logged so far (blocks until it is on disk)."""
        if self.life.run is not None:
            self.life.run.flush()

    def close(self) -> None:
        """Write out what is queued, close the run and finish its uploads and backends."""
        self._closed = True
        self.life.close()


show_options(TFLogger.__init__, LogOptions, StoreOptions)


def _host(value):
    if value is None:
        return None
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return value.numpy()
    return value
