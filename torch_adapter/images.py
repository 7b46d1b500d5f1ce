"""Pull images and keypoints out of mmengine/mmpose batches as numpy, for the core renderer.

mmpose data samples carry ``gt_instances.keypoints`` / ``keypoints_visible`` (and, after
``TopdownAffine``, ``transformed_keypoints`` in input-image space) and
``pred_instances.keypoints`` / ``keypoint_scores`` in original-image space. Predictions are
mapped into the input crop with the sample's ``input_center``/``input_scale``/``input_size``
metainfo when present, so both overlays line up with the picture that is shown.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from torch_adapter import mmengine_internals


@dataclass
class ImageBatch:
    """What the renderer needs, host-side: images N x C x H x W and per-image overlays."""

    images: np.ndarray
    mean: Optional[Sequence[float]] = None
    std: Optional[Sequence[float]] = None
    bgr: bool = False
    gt: List[Optional[np.ndarray]] = field(default_factory=list)
    gt_visible: List[Optional[np.ndarray]] = field(default_factory=list)
    pred: List[Optional[np.ndarray]] = field(default_factory=list)
    scores: List[Optional[np.ndarray]] = field(default_factory=list)
    heatmaps: List[Optional[np.ndarray]] = field(default_factory=list)  # K x h x w, over the input crop


def preprocessor_settings(model: torch.nn.Module) -> Tuple[Optional[list], Optional[list], bool]:
    """(mean, std, swaps_channels) of an mmengine ImgDataPreprocessor, if the model has one."""
    pre = getattr(model, "data_preprocessor", None)
    if pre is None:
        return None, None, False
    mean = getattr(pre, "mean", None)
    std = getattr(pre, "std", None)
    enabled, swaps = mmengine_internals.normalization(pre, mean is not None)
    if not enabled or mean is None or std is None:
        return None, None, swaps
    return (torch.as_tensor(mean).flatten().tolist(), torch.as_tensor(std).flatten().tolist(), swaps)


def host_images(inputs, limit: int) -> np.ndarray:
    """The first ``limit`` inputs (a stacked tensor or a list of CHW tensors) on the host."""
    if isinstance(inputs, torch.Tensor):
        return inputs[:limit].detach().cpu().numpy()
    if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], torch.Tensor):
        return torch.stack([t.detach().cpu() for t in inputs[:limit]]).numpy()
    return np.asarray(inputs)[:limit]


def _field(obj, name: str):
    try:
        value = getattr(obj, name)
    except AttributeError:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return None if value is None else np.asarray(value)


def _to_input_space(points: np.ndarray, meta: dict) -> np.ndarray:
    center, scale, size = meta.get("input_center"), meta.get("input_scale"), meta.get("input_size")
    if center is None or scale is None or size is None:
        return points
    center, scale, size = (np.asarray(v, dtype=np.float32).reshape(-1)[:2] for v in (center, scale, size))
    return (points - (center - scale / 2.0)) * (size / scale)


def overlays(data_samples: Optional[Sequence], limit: int, with_predictions: bool) -> Tuple[list, list, list, list]:
    """GT / visibility / prediction / score lists for the first ``limit`` samples."""
    gt, vis, pred, scores = [], [], [], []
    for sample in list(data_samples or [])[:limit]:
        gt_inst = getattr(sample, "gt_instances", None)
        meta = sample.metainfo if hasattr(sample, "metainfo") else {}
        points = _field(gt_inst, "transformed_keypoints")
        if points is None:  # mmpose packs GT in original-image space: map it into the crop too
            points = _field(gt_inst, "keypoints")
            if points is not None:
                points = _to_input_space(points.astype(np.float32), meta)
        gt.append(points)
        visible = _field(gt_inst, "keypoints_visible")
        vis.append(None if visible is None or points is None or visible.size != points[..., 0].size else visible)
        pred_inst = getattr(sample, "pred_instances", None) if with_predictions else None
        p = _field(pred_inst, "keypoints")
        pred.append(None if p is None else _to_input_space(p.astype(np.float32), meta))
        s = _field(pred_inst, "keypoint_scores")
        scores.append(s if s is not None and p is not None and s.size == p[..., 0].size else None)
    return gt, vis, pred, scores


def image_batch(model: torch.nn.Module, inputs, data_samples, limit: int, with_predictions: bool) -> ImageBatch:
    """Build an ImageBatch from a raw mmengine batch (before or after the data preprocessor).

    Raw uint8 inputs are shown as they are (BGR when the preprocessor converts BGR->RGB);
    float inputs are taken as normalised and are denormalised with the preprocessor's
    mean/std (0-1 or 0-255, detected by the core).
    """
    images = host_images(inputs, limit)
    mean, std, swaps = preprocessor_settings(model)
    is_raw = images.dtype == np.uint8
    batch = ImageBatch(images=images, mean=None if is_raw else mean, std=None if is_raw else std,
                       bgr=swaps if is_raw else False)
    batch.gt, batch.gt_visible, batch.pred, batch.scores = overlays(data_samples, limit, with_predictions)
    if with_predictions:
        batch.heatmaps = predicted_heatmaps(data_samples, limit)
    return batch


def predicted_heatmaps(data_samples: Optional[Sequence], limit: int) -> List[Optional[np.ndarray]]:
    """mmpose's ``pred_fields.heatmaps`` (K x h x w, the input crop's frame) of the first
    ``limit`` samples; they are there when the model's ``test_cfg`` has ``output_heatmaps=True``."""
    found = [_field(getattr(sample, "pred_fields", None), "heatmaps") for sample in list(data_samples or [])[:limit]]
    return found if any(h is not None for h in found) else []
