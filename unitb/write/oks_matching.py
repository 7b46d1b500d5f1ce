"""Keypoint matching by OKS (object keypoint similarity), as COCO's keypoint evaluation does,
for the keypoint PR curve (``val/pr/keypoints_oks50``): numpy only, both frameworks."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# COCO's per-keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
OTHER_SIGMA = 0.05  # a skeleton of another size: one sigma for every keypoint (roughly COCO's median)


def sigmas_for(count: int) -> np.ndarray:
    return COCO_SIGMAS if count == len(COCO_SIGMAS) else np.full(count, OTHER_SIGMA)


def oks(pred: np.ndarray, gt: np.ndarray, visible: Optional[np.ndarray], area: float) -> float:
    """OKS of one predicted pose against one ground-truth pose (K x 2 each), over the GT's
    visible keypoints; ``area`` is the object's area in pixels². No visible keypoint: 0."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    seen = np.ones(len(gt), bool) if visible is None else np.asarray(visible).reshape(-1) > 0
    if not seen.any() or len(pred) != len(gt):
        return 0.0
    variance = (2 * sigmas_for(len(gt))) ** 2
    squared = ((pred - gt) ** 2).sum(axis=1)
    similarity = np.exp(-squared / (2 * variance * (max(float(area), 1.0) + np.spacing(1))))
    return float(similarity[seen].mean())


def object_area(gt: np.ndarray, visible: Optional[np.ndarray], box: Optional[Sequence[float]] = None) -> float:
    """The object's area: its box (x1, y1, x2, y2) when there is one, else the extent of its
    visible keypoints."""
    if box is not None and len(box) >= 4:
        return float(max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0))
    points = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    if visible is not None:
        points = points[np.asarray(visible).reshape(-1) > 0]
    if len(points) < 2:
        return 0.0
    extent = points.max(axis=0) - points.min(axis=0)
    return float(extent[0] * extent[1])


def matched_at(similarities: Sequence[float], scores: Sequence[float],
               threshold: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, scores) for a PR curve: a prediction is a true positive when its OKS with its
    object reaches ``threshold``; scores are clipped into [0, 1]."""
    labels = np.asarray(similarities, dtype=np.float64) >= threshold
    return labels, np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)


# COCO's AP50 and AP75 thresholds: a model good enough to match everything at 0.5 still has a curve at 0.75.
OKS_THRESHOLDS = (0.5, 0.75)
TAG = "val/pr/keypoints_oks{:.0f}"  # .format(threshold * 100)


class KeypointMatches:
    """The OKS of every validation prediction against its object over one validation pass, and
    the PR curves drawn from them (``val/pr/keypoints_oks50``, ``…_oks75``). A prediction's score
    is the mean of its keypoint scores."""

    def __init__(self) -> None:
        self.similarities: List[float] = []
        self.scores: List[float] = []

    def start(self) -> None:
        self.similarities, self.scores = [], []

    def add(self, pred: np.ndarray, gt: np.ndarray, scores: np.ndarray, visible: Optional[np.ndarray] = None,
            box: Optional[Sequence[float]] = None) -> None:
        """One predicted pose (K x 2) and its keypoint scores against its object's pose (K x 2)."""
        area = object_area(gt, visible, box)
        self.similarities.append(oks(pred, gt, visible, area))
        self.scores.append(float(np.mean(scores)))

    def take(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """{tag: (labels, scores)} of the pass at each OKS threshold ({} when nothing was matched)."""
        out = {TAG.format(t * 100): matched_at(self.similarities, self.scores, t)
               for t in OKS_THRESHOLDS} if self.similarities else {}
        self.start()
        return out
