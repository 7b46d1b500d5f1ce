"""Write a tiny synthetic COCO-format keypoint dataset: stick figures with 17 COCO keypoints.

    python examples/mmpose/make_coco.py data/tiny_coco --train 32 --val 16
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np
from PIL import Image, ImageDraw

SIZE = 96
NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
         "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
         "right_ankle"]
# A standing figure in a unit box (x to the right, y down); COCO's skeleton is 1-based.
TEMPLATE = np.array([[.5, .08], [.46, .05], [.54, .05], [.42, .07], [.58, .07], [.36, .25], [.64, .25], [.28, .42],
                     [.72, .42], [.24, .58], [.76, .58], [.42, .58], [.58, .58], [.40, .78], [.60, .78], [.40, .97],
                     [.60, .97]], np.float32)
SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
            [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def figure(rng: np.random.Generator, hard: bool = False):
    """One image with one person: (PIL image, 17 x 2 keypoints, xywh box). ``hard``: the
    validation split's harder crops — sensor noise, and on most images a patch of background
    over part of the figure — so the model misses some people, and its PR curves show the
    usual trade-off instead of sitting at precision 1."""
    h = rng.uniform(50, 80)
    w = h * rng.uniform(0.45, 0.6)
    x0, y0 = rng.uniform(2, SIZE - w - 2), rng.uniform(2, SIZE - h - 2)
    kpts = TEMPLATE * [w, h] + [x0, y0] + rng.normal(0, 1.2, TEMPLATE.shape)
    image = Image.new("RGB", (SIZE, SIZE), tuple(int(c) for c in rng.integers(20, 60, 3)))
    draw = ImageDraw.Draw(image)
    for a, b in SKELETON:
        draw.line([tuple(kpts[a - 1]), tuple(kpts[b - 1])], fill=(230, 200, 160), width=3)
    for x, y in kpts:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(255, 120, 40))
    if hard:
        background = tuple(int(c) for c in rng.integers(20, 60, 3))
        for _ in range(int(rng.integers(0, 4))):  # up to 3 patches over the figure
            cx, cy = rng.uniform(x0, x0 + w), rng.uniform(y0, y0 + h)
            half = rng.uniform(10, 26)
            draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=background)
        pixels = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(10, 70), (SIZE, SIZE, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    box = [float(kpts[:, 0].min() - 3), float(kpts[:, 1].min() - 3)]
    box += [float(kpts[:, 0].max() + 3) - box[0], float(kpts[:, 1].max() + 3) - box[1]]
    return image, kpts, box


def write_split(root: str, split: str, count: int, seed: int, hard: bool = False) -> str:
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images: List[Dict] = []
    annotations: List[Dict] = []
    for index in range(count):
        image, kpts, box = figure(rng, hard)
        name = f"{split}_{index:04d}.jpg"
        image.save(os.path.join(root, "images", name), quality=95)
        image_id = index + 1
        images.append({"id": image_id, "file_name": name, "width": SIZE, "height": SIZE})
        flat = np.concatenate([kpts, np.full((17, 1), 2.0)], axis=1).reshape(-1).round(2).tolist()
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1, "bbox": [round(v, 2) for v in box],
                            "area": round(box[2] * box[3], 2), "iscrowd": 0, "num_keypoints": 17, "keypoints": flat})
    path = os.path.join(root, "annotations", f"{split}.json")
    with open(path, "w") as handle:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": NAMES,
                                   "skeleton": SKELETON}]}, handle)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--val", type=int, default=16)
    args = parser.parse_args(argv)
    write_split(args.root, "train", args.train, seed=0)
    write_split(args.root, "val", args.val, seed=1, hard=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
