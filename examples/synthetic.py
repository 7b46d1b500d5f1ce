"""Synthetic data shared by the examples (numpy only): no downloads, deterministic."""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

NUM_KPTS = 5
SIZE = 32
SKELETON = [(0, 1), (1, 2), (2, 3), (3, 4)]


def keypoint_images(length: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``length`` RGB uint8 images (SIZE x SIZE) with NUM_KPTS bright blobs along a bent
    'limb', and their keypoints (length x NUM_KPTS x 2, pixel x/y)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    images = np.empty((length, SIZE, SIZE, 3), np.uint8)
    keypoints = np.empty((length, NUM_KPTS, 2), np.float32)
    for n in range(length):
        start = rng.uniform(6, SIZE - 6, size=2)
        angles = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.5, NUM_KPTS))
        pts = [start]
        for a in angles[:-1]:
            pts.append(np.clip(pts[-1] + 4.0 * np.array([math.cos(a), math.sin(a)]), 2, SIZE - 3))
        kpts = np.stack(pts).astype(np.float32)
        img = np.full((SIZE, SIZE, 3), 40, dtype=np.float32)
        for i, (x, y) in enumerate(kpts):
            img[..., i % 3] += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2.0)
        images[n] = np.clip(img, 0, 255).astype(np.uint8)
        keypoints[n] = kpts
    return images, keypoints


def detection_images(length: int, grid: int = 4, classes: int = 3, seed: int = 0, noise: float = 0.0):
    """Images with one coloured square each and YOLO-style targets on a grid x grid map:
    (objectness, cx, cy, w, h, one-hot class) per cell, plus the xyxy box in pixels.
    ``noise``: the largest standard deviation of the pixel noise each image gets (each draws
    its own up to it): harder validation images, so some boxes are missed and the PR curve
    shows its trade-off."""
    rng = np.random.default_rng(seed)
    images = np.full((length, SIZE, SIZE, 3), 30, np.uint8)
    targets = np.zeros((length, grid, grid, 5 + classes), np.float32)
    boxes = np.zeros((length, 1, 4), np.float32)
    colours = np.array([[230, 60, 60], [60, 230, 60], [60, 60, 230]], np.uint8)
    cell = SIZE / grid
    for n in range(length):
        w, h = rng.uniform(6, 14, size=2)
        x1, y1 = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
        cls = int(rng.integers(classes))
        images[n, int(y1):int(y1 + h), int(x1):int(x1 + w)] = colours[cls % len(colours)]
        cx, cy = x1 + w / 2, y1 + h / 2
        gx, gy = min(grid - 1, int(cx // cell)), min(grid - 1, int(cy // cell))
        targets[n, gy, gx, :5] = [1.0, cx / cell - gx, cy / cell - gy, w / SIZE, h / SIZE]
        targets[n, gy, gx, 5 + cls] = 1.0
        boxes[n, 0] = [x1, y1, x1 + w, y1 + h]
    if noise:
        sigma = rng.uniform(0, noise, size=(length, 1, 1, 1))
        images = np.clip(images + rng.normal(0, 1, images.shape) * sigma, 0, 255).astype(np.uint8)
    return images, targets, boxes
