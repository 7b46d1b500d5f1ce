"""A seed-004-style YOLO training loop in TensorFlow, logged with unitb.TFLogger and made
resumable with unitb.CheckpointManager: run it again after a crash and it continues from
the last checkpoint, with every step on the curves exactly once.

    python examples/yolo_tf_loop.py --out runs --steps 64
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from synthetic import SIZE, detection_images  # noqa: E402

GRID, CLASSES, BATCH = 4, 3, 8


def build_model():
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="backbone_conv1")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="backbone_conv2")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="backbone_conv3")(x)
    x = keras.layers.MaxPooling2D()(x)
    outputs = keras.layers.Conv2D(5 + CLASSES, 1, name="yolo_head")(x)  # GRID x GRID cells
    return keras.Model(inputs, outputs, name="tiny_yolo")


def yolo_losses(pred, target):
    """YOLO v1-style parts: coord, object, noobject, class, and their sum 'total'."""
    import tensorflow as tf

    obj = target[..., 0]
    noobj = 1.0 - obj
    bce = lambda logits, labels: tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    coord = tf.reduce_sum(obj[..., None] * tf.square(tf.sigmoid(pred[..., 1:5]) - target[..., 1:5])) * 5.0
    objectness = tf.reduce_sum(obj * bce(pred[..., 0], obj))
    noobject = tf.reduce_sum(noobj * bce(pred[..., 0], obj)) * 0.5
    cls = tf.reduce_sum(obj * tf.nn.softmax_cross_entropy_with_logits(labels=target[..., 5:], logits=pred[..., 5:]))
    batch = tf.cast(tf.shape(pred)[0], tf.float32)
    parts = {"coord": coord / batch, "object": objectness / batch, "noobject": noobject / batch,
             "class": cls / batch}
    parts["total"] = tf.add_n(list(parts.values()))
    return parts


def decode_boxes(pred: np.ndarray) -> np.ndarray:
    """The most confident cell's box per image, xyxy pixels (N x 1 x 4)."""
    n = pred.shape[0]
    flat = pred[..., 0].reshape(n, -1)
    best = flat.argmax(axis=1)
    gy, gx = np.divmod(best, GRID)
    cell = SIZE / GRID
    boxes = np.zeros((n, 1, 4), np.float32)
    for i in range(n):
        tx, ty, tw, th = 1 / (1 + np.exp(-pred[i, gy[i], gx[i], 1:5]))
        cx, cy, w, h = (gx[i] + tx) * cell, (gy[i] + ty) * cell, tw * SIZE, th * SIZE
        boxes[i, 0] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    return boxes


VAL_NOISE = 90.0  # harder validation images: the PR curve then shows a trade-off, not precision 1


def box_confidence(pred: np.ndarray) -> np.ndarray:
    """The objectness of each image's most confident cell, in [0, 1] (the score of decode_boxes)."""
    flat = pred[..., 0].reshape(pred.shape[0], -1)
    return 1 / (1 + np.exp(-flat.max(axis=1)))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x2, y2 = np.minimum(a[..., 2], b[..., 2]), np.minimum(a[..., 3], b[..., 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    return inter / np.maximum(area(a) + area(b) - inter, 1e-6)


def train(out: str, steps: int = 60, save_every: int = 50, crash_at: Optional[int] = None,
          logger_kwargs: Optional[dict] = None, val_every: int = 20, in_graph: bool = False) -> str:
    import keras
    import tensorflow as tf

    import unitb

    keras.utils.set_random_seed(0)
    images, targets, boxes = detection_images(64, GRID, CLASSES, seed=0)
    val_images, val_targets, val_boxes = detection_images(16, GRID, CLASSES, seed=1, noise=VAL_NOISE)
    model = build_model()
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([steps // 2], [0.01, 0.003])
    optimizer = keras.optimizers.Adam(schedule)
    run_dir = os.path.join(out, "tf-yolo-loop")
    ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), model=model, optimizer=optimizer)
    manager = unitb.CheckpointManager(ckpt, os.path.join(out, "tf-yolo-loop-ckpt"), max_to_keep=3,
                                      save_every=save_every)
    start = manager.restore_or_initialize()
    kwargs = dict(grad_norm_interval=5, scalar_interval=1, train_image_interval=20, max_layers_to_log=6,
                  log_graph=True)
    kwargs.update(logger_kwargs or {})
    logger = unitb.TFLogger(run_dir, checkpoint_manager=manager, model=model,
                            hparams={"optimizer": "Adam", "learning_rate": 0.01, "batch_size": BATCH,
                                     "max_steps": steps, "amp": False, "input_size": (SIZE, SIZE)}, **kwargs)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            losses = yolo_losses(model(x, training=True), y)
        grads = tape.gradient(losses["total"], model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        ckpt.step.assign_add(1)
        if in_graph:
            logger.log_train_step(ckpt.step, losses=losses, learning_rate=optimizer.learning_rate, grads=grads,
                                  variables=model.trainable_variables)
        return losses, grads

    steps_per_epoch = len(images) // BATCH
    for step in range(start + 1, steps + 1):
        fetch_started = time.perf_counter()
        lo = ((step - 1) % steps_per_epoch) * BATCH
        batch_x, batch_y = tf.constant(images[lo:lo + BATCH]), tf.constant(targets[lo:lo + BATCH])
        data_time = time.perf_counter() - fetch_started
        losses, grads = train_step(batch_x, batch_y)
        if not in_graph:
            logger.log_train_step(step, losses=losses, learning_rate=optimizer.learning_rate, grads=grads,
                                  variables=model.trainable_variables, epoch=step / steps_per_epoch,
                                  batch_size=BATCH, data_time=data_time)
        if step % steps_per_epoch == 0:
            logger.log_weights(step, step // steps_per_epoch, model.trainable_variables)
        if step % val_every == 0 or step == steps:
            pred = model(val_images, training=False).numpy()
            val_losses = yolo_losses(tf.constant(pred), tf.constant(val_targets))
            ious = box_iou(decode_boxes(pred), val_boxes).reshape(-1)
            logger.log_val(step, {"loss": val_losses["total"], "iou": float(ious.mean())})
            # A detection is right when it overlaps its box at IoU >= 0.5: the PR CURVES tab.
            logger.log_pr_curve("val/pr/boxes_iou50", ious >= 0.5, box_confidence(pred), step=step)
            logger.log_images(step, val_images[:4], split="val", gt_boxes=val_boxes[:4],
                              pred_boxes=decode_boxes(pred[:4]))
        if logger.options.train_image_policy.should_log(step):
            logger.log_images(step, images[:4], gt_boxes=boxes[:4],
                              pred_boxes=decode_boxes(model(images[:4], training=False).numpy()))
        manager.maybe_save()
        if crash_at is not None and step == crash_at:
            logger.flush()
            os._exit(17)  # a hard crash: no clean-up, no atexit
    logger.close()
    run_dir = logger.run_dir or run_dir  # tf-yolo-loop-2 when a fresh run found another one there
    print(f"tf-yolo-loop: events in {run_dir} (resumed from step {start})" if start else
          f"tf-yolo-loop: events in {run_dir}")
    return run_dir


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(description="YOLO-style custom TF loop logged with unitb.TFLogger")
    parser.add_argument("--out", default="runs")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--crash-at", type=int, default=None, help="simulate a hard crash after this step")
    parser.add_argument("--in-graph", action="store_true", help="log from inside the tf.function")
    args = parser.parse_args(argv)
    return train(args.out, args.steps, args.save_every, args.crash_at, in_graph=args.in_graph)


if __name__ == "__main__":
    main(sys.argv[1:])
