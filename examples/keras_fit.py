"""A tiny keypoint model (keypoint, visibility and heatmap heads) trained with Keras
``model.fit``, logged with one callback:

    model.fit(x, y, validation_data=(vx, vy), callbacks=[unitb.TFCallback("runs/keras-fit")])

    python examples/keras_fit.py --out runs --steps 64
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from synthetic import NUM_KPTS, SIZE, SKELETON, keypoint_images  # noqa: E402


def build_model():
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv3")(x)
    heatmaps = keras.layers.Conv2D(NUM_KPTS, 1, activation="sigmoid", name="heatmaps")(x)  # SIZE/4 a side
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    outputs = {"keypoints": keras.layers.Dense(NUM_KPTS * 2, activation="sigmoid", name="keypoints")(x),
               "visible": keras.layers.Dense(NUM_KPTS, activation="sigmoid", name="visible")(x),
               "heatmaps": heatmaps}
    return keras.Model(inputs, outputs, name="tiny_keypoint_regressor")


def predict_keypoints(model, images):
    """(keypoints N x K x 2 in pixels, scores N x K) for TFCallback's images."""
    out = model(images, training=False)
    coords = np.asarray(out["keypoints"]).reshape(-1, NUM_KPTS, 2) * SIZE
    return coords, np.asarray(out["visible"])


def predict_heatmaps(model, images):
    """The heatmap head's output (N x SIZE/4 x SIZE/4 x K) for TFCallback's val/heatmap images."""
    return np.asarray(model(images, training=False)["heatmaps"])


def gaussian_heatmaps(kpts: np.ndarray, side: int = SIZE // 4, sigma: float = 1.0) -> np.ndarray:
    """Targets for the heatmap head: a Gaussian at each keypoint on a side x side grid (N x side x side x K)."""
    grid = (np.arange(side, dtype=np.float32) + 0.5) * (SIZE / side)
    centres = kpts.astype(np.float32)  # N x K x 2 (x, y) in pixels
    dx = (grid[None, None, :] - centres[..., 0:1]) / (SIZE / side)  # N x K x side
    dy = (grid[None, None, :] - centres[..., 1:2]) / (SIZE / side)
    maps = np.exp(-(dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / (2 * sigma ** 2))  # N x K x side x side
    return np.moveaxis(maps, 1, -1).astype(np.float32)


def targets(kpts: np.ndarray) -> dict:
    return {"keypoints": kpts.reshape(len(kpts), -1) / SIZE, "visible": np.ones(kpts.shape[:2], np.float32),
            "heatmaps": gaussian_heatmaps(kpts)}


def train(out: str, steps: int = 60, batch_size: int = 8, callback_kwargs: Optional[dict] = None,
          epochs: Optional[int] = None, lr: float = 0.01) -> str:
    import keras

    import unitb

    keras.utils.set_random_seed(0)
    images, kpts = keypoint_images(64, seed=0)
    val_images, val_kpts = keypoint_images(16, seed=1)
    steps_per_epoch = math.ceil(len(images) / batch_size)
    epochs = epochs or max(1, math.ceil(steps / steps_per_epoch))
    model = build_model()
    schedule = keras.optimizers.schedules.CosineDecay(0.3 * lr, decay_steps=max(1, steps), warmup_target=lr,
                                                      warmup_steps=max(1, steps // 3))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  # Cross-entropy on the heatmaps: with MSE the head learns near-zero maps first (the
                  # targets are mostly 0) and its peaks stay under 0.15 for the demo's 64 steps,
                  # invisible in train/heatmap; with it they reach ~0.6.
                  loss={"keypoints": "mse", "visible": "binary_crossentropy", "heatmaps": "binary_crossentropy"},
                  metrics={"keypoints": ["mae"]})
    run_dir = os.path.join(out, "keras-fit")
    sides = ["left" if k[0, 0] < SIZE / 2 else "right" for k in val_kpts]
    kwargs = dict(grad_norm_interval=5, scalar_interval=1, train_image_interval=20, max_layers_to_log=6,
                  log_graph=True, profile_steps=(10, 11) if steps >= 12 else None)  # PROFILE: two steps
    kwargs.update(callback_kwargs or {})
    callback = unitb.TFCallback(run_dir, image_data=images[:4], gt_keypoints=kpts[:4],
                                val_image_data=val_images[:4], val_gt_keypoints=val_kpts[:4],
                                predict_keypoints=predict_keypoints, skeleton=SKELETON,
                                hparams={"batch_size": batch_size},
                                # The PROJECTOR: the layer before the heads on the validation images, labelled
                                # by where the first keypoint is, with the images as the sprite.
                                embedding_layer="dense", embedding_data=(val_images, sides),
                                predict_heatmaps=predict_heatmaps, **kwargs)
    model.fit(images, targets(kpts), batch_size=batch_size, epochs=epochs, shuffle=False,
              validation_data=(val_images, targets(val_kpts)),
              callbacks=[callback], verbose=0)
    callback.close()
    run_dir = callback.run_dir or run_dir  # keras-fit-2 when keras-fit already held another run
    print(f"keras-fit: events in {run_dir}")
    return run_dir


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(description="Keras fit logged with unitb.TFCallback")
    parser.add_argument("--out", default="runs")
    parser.add_argument("--steps", type=int, default=64)
    # A sweep's ${args} spell parameters as they are named: --lr=0.01 --batch_size=8.
    parser.add_argument("--lr", type=float, default=0.01, help="the peak learning rate (after warm-up)")
    parser.add_argument("--batch_size", "--batch-size", type=int, default=8)
    parser.add_argument("--activations", action="store_true", help="histograms of the conv3 and dense outputs")
    args = parser.parse_args(argv)
    extra = dict(activation_layers=("conv3", "dense")) if args.activations else None
    return train(args.out, args.steps, batch_size=args.batch_size, lr=args.lr, callback_kwargs=extra)


if __name__ == "__main__":
    main(sys.argv[1:])
