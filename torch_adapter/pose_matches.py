"""OKS of every validation prediction against its object, over one validation epoch of the
mmengine hook: what ``val/pr/keypoints_oks50`` and ``…_oks75`` (the PR CURVES tab) are drawn from.

A top-down model predicts one pose per sample for the sample's one object, so the i-th
prediction is matched with the i-th ground-truth instance; both are in original-image space
in mmpose's data samples. A prediction's score is the mean of its keypoint scores.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from torch_adapter.images import _field
from unitb.write import oks_matching

# COCO's AP50 and AP75 thresholds: a model good enough to match everything at 0.5 still has a curve at 0.75.
OKS_THRESHOLDS = (0.5, 0.75)
TAG = "val/pr/keypoints_oks{:.0f}"  # .format(threshold * 100)


class KeypointMatches:
    def __init__(self) -> None:
        self.similarities: List[float] = []
        self.scores: List[float] = []

    def start(self) -> None:
        self.similarities, self.scores = [], []

    def add(self, outputs: Optional[Sequence]) -> None:
        """The predictions of one validation batch (mmpose data samples); samples without
        keypoints (another kind of model) add nothing."""
        for sample in outputs or []:
            gt_inst = getattr(sample, "gt_instances", None)
            pred_inst = getattr(sample, "pred_instances", None)
            gt, pred = _field(gt_inst, "keypoints"), _field(pred_inst, "keypoints")
            scores = _field(pred_inst, "keypoint_scores")
            if gt is None or pred is None or scores is None:
                continue
            gt, pred = gt.reshape(-1, gt.shape[-2], 2), pred.reshape(-1, pred.shape[-2], 2)
            visible = _field(gt_inst, "keypoints_visible")
            boxes = _field(gt_inst, "bboxes")
            scores = scores.reshape(len(pred), -1)
            for i in range(min(len(gt), len(pred))):
                seen = None if visible is None else visible.reshape(len(gt), -1)[i]
                box = None if boxes is None or len(boxes) <= i else boxes.reshape(len(gt), -1)[i]
                area = oks_matching.object_area(gt[i], seen, box)
                self.similarities.append(oks_matching.oks(pred[i], gt[i], seen, area))
                self.scores.append(float(np.mean(scores[i])))

    def take(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """{tag: (labels, scores)} of the epoch at each OKS threshold ({} when nothing was matched)."""
        out = {TAG.format(t * 100): oks_matching.matched_at(self.similarities, self.scores, t)
               for t in OKS_THRESHOLDS} if self.similarities else {}
        self.start()
        return out
