"""OKS of every validation prediction against its object, over one validation epoch of the
mmengine hook: what ``val/pr/keypoints_oks50`` and ``…_oks75`` (the PR CURVES tab) are drawn from.

A top-down model predicts one pose per sample for the sample's one object, so the i-th
prediction is matched with the i-th ground-truth instance; both are in original-image space
in mmpose's data samples. A prediction's score is the mean of its keypoint scores.
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch_adapter.images import _field
from unitb.write import oks_matching


class KeypointMatches(oks_matching.KeypointMatches):
    """The core's OKS matches (:class:`unitb.write.oks_matching.KeypointMatches`), fed from mmpose's
    data samples."""

    def add_samples(self, outputs: Optional[Sequence]) -> None:
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
                self.add(pred[i], gt[i], scores[i], seen, box)
