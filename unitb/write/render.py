"""Turn framework-free numpy batches into the images unitb logs.

Everything here is vectorised numpy plus Pillow drawing of a few primitives (points,
lines, boxes): no per-pixel Python loop. Bad input raises :class:`RenderError` (a
``ValueError``) with a message that says what was wrong; the run logger turns it into one
warning so training never stops for a picture.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

# Pillow 9.1 moved the resampling filters into Image.Resampling (the old names went in 10).
_BILINEAR = getattr(PILImage, "Resampling", PILImage).BILINEAR

GT_COLOR = (0, 255, 0)
PRED_COLOR = (255, 0, 0)
BOX_COLOR = (255, 255, 0)
_CHANNELS = (1, 3, 4)


class RenderError(ValueError):
    """An image or keypoint array unitb cannot draw; the message says why."""


def _channels_first(shape: Sequence[int], layout: str = "auto") -> bool:
    """Whether a rank-3 image of this shape is CHW: said by ``layout``, or for ``auto`` a leading
    axis of size 1/3/4 while the last axis is not one of those."""
    return layout == "CHW" or (layout == "auto" and shape[0] in _CHANNELS and shape[-1] not in _CHANNELS)


def to_hwc(image: np.ndarray, layout: str = "auto") -> np.ndarray:
    """Return ``image`` as HWC with 1, 3 or 4 channels (a 2-D array gets one channel).

    ``layout='auto'`` takes a leading axis of size 1/3/4 as channels unless the last axis
    is also one of those (HWC wins then only if the first axis is larger than 4).
    """
    array = np.asarray(image)
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim != 3:
        raise RenderError(f"expected an image of rank 2 or 3 (HW, CHW or HWC), got shape {array.shape}")
    if layout not in ("auto", "CHW", "HWC"):
        raise RenderError(f"layout must be 'auto', 'CHW' or 'HWC', got {layout!r}")
    if _channels_first(array.shape, layout):
        array = np.moveaxis(array, 0, -1)
    if array.shape[-1] not in _CHANNELS:
        raise RenderError(f"expected 1, 3 or 4 channels, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise RenderError(f"empty image, shape {array.shape}")
    return array


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale to uint8: uint8 stays; floats in [0, 1] are scaled by 255; other numbers are
    taken as 0-255 and clipped. NaN/Inf become 0."""
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if not np.issubdtype(array.dtype, np.number):
        raise RenderError(f"image dtype must be numeric, got {array.dtype}")
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    finite_max = float(values.max()) if values.size else 0.0
    if np.issubdtype(array.dtype, np.floating) and finite_max <= 1.0 + 1e-6:
        values = values * 255.0
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def to_rgb(image_hwc: np.ndarray) -> np.ndarray:
    """1 channel -> grey RGB, 4 channels -> RGB (alpha dropped)."""
    channels = image_hwc.shape[-1]
    if channels == 1:
        return np.repeat(image_hwc, 3, axis=-1)
    if channels == 4:
        return image_hwc[..., :3]
    return image_hwc


def normalise_mean_std(mean: Sequence[float], std: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Return mean/std on the 0-1 scale. Values above 2 mean the 0-255 scale (mmpose configs give 0-255)."""
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(-1)
    std_arr = np.asarray(std, dtype=np.float32).reshape(-1)
    if mean_arr.shape != std_arr.shape or mean_arr.size not in (1, 3, 4):
        raise RenderError(f"mean/std must have 1, 3 or 4 matching values, got {mean_arr.shape} and {std_arr.shape}")
    if float(np.abs(mean_arr).max()) > 2.0 or float(np.abs(std_arr).max()) > 2.0:
        mean_arr, std_arr = mean_arr / 255.0, std_arr / 255.0
    return mean_arr, std_arr


def denormalize(batch: np.ndarray, mean: Sequence[float], std: Sequence[float],
                channel_axis: int = 1, bgr: bool = False) -> np.ndarray:
    """Undo ``(x - mean) / std`` for a whole batch in one vectorised op.

    ``batch`` is N x C x H x W (``channel_axis=1``) or N x H x W x C (``channel_axis=-1``).
    The result is float32 in [0, 1] with channels in RGB order (``bgr=True`` flips BGR input).
    """
    array = np.asarray(batch, dtype=np.float32)
    if array.ndim != 4:
        raise RenderError(f"expected a batch of rank 4, got shape {array.shape}")
    mean_arr, std_arr = normalise_mean_std(mean, std)
    shape = [1, 1, 1, 1]
    axis = channel_axis % 4
    channels = array.shape[axis]
    if mean_arr.size not in (1, channels):
        raise RenderError(f"mean has {mean_arr.size} values but the batch has {channels} channels")
    shape[axis] = mean_arr.size
    out = array * std_arr.reshape(shape) + mean_arr.reshape(shape)
    if bgr and channels == 3:
        out = np.flip(out, axis=axis)
    return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)


def draw_keypoints(image: np.ndarray, gt: Optional[np.ndarray] = None, pred: Optional[np.ndarray] = None,
                   scores: Optional[np.ndarray] = None, kpt_thr: float = 0.3,
                   skeleton: Optional[Sequence[Tuple[int, int]]] = None,
                   gt_visible: Optional[np.ndarray] = None, radius: int = 2) -> np.ndarray:
    """Draw GT keypoints (green, where visible) and predictions (red, where score >= kpt_thr).

    ``gt``/``pred`` are K x 2 or N x K x 2 pixel coordinates; ``scores`` matches ``pred``
    without the last axis. Points that are NaN or off the image are skipped.
    """
    canvas = PILImage.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    for points, color, keep in (
        (gt, GT_COLOR, None if gt_visible is None else np.asarray(gt_visible).reshape(-1) > 0),
        (pred, PRED_COLOR, None if scores is None else np.asarray(scores, dtype=np.float32).reshape(-1) >= kpt_thr),
    ):
        if points is None:
            continue
        coords = _as_points(points)
        num_kpts = coords.shape[0] if np.asarray(points).ndim < 3 else np.asarray(points).shape[-2]
        if keep is not None:
            if keep.size != coords.shape[0]:
                raise RenderError(f"got {keep.size} scores/visibility flags for {coords.shape[0]} keypoints")
            mask = keep
        else:
            mask = np.ones(coords.shape[0], dtype=bool)
        mask &= np.isfinite(coords).all(axis=1)
        if skeleton:
            _draw_skeleton(draw, coords, mask, skeleton, num_kpts, color)
        for x, y in coords[mask]:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color, outline=color)
    return np.asarray(canvas)


def _as_points(points: np.ndarray) -> np.ndarray:
    array = np.asarray(points, dtype=np.float32)
    if array.ndim not in (2, 3) or array.shape[-1] < 2:
        raise RenderError(f"keypoints must be K x 2 or N x K x 2 (x, y), got shape {array.shape}")
    return array[..., :2].reshape(-1, 2)


def _draw_skeleton(draw: ImageDraw.ImageDraw, coords: np.ndarray, mask: np.ndarray,
                   skeleton: Sequence[Tuple[int, int]], num_kpts: int, color: Tuple[int, int, int]) -> None:
    for start in range(0, coords.shape[0], num_kpts):
        for a, b in skeleton:
            ia, ib = start + int(a), start + int(b)
            if ia < coords.shape[0] and ib < coords.shape[0] and mask[ia] and mask[ib]:
                draw.line([tuple(coords[ia]), tuple(coords[ib])], fill=color, width=1)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, color: Tuple[int, int, int] = BOX_COLOR) -> np.ndarray:
    """Draw ``N x 4`` xyxy boxes."""
    array = np.asarray(boxes, dtype=np.float32)
    if array.size == 0:
        return image
    if array.ndim != 2 or array.shape[1] != 4:
        raise RenderError(f"boxes must be N x 4 (x1, y1, x2, y2), got shape {array.shape}")
    canvas = PILImage.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    for x1, y1, x2, y2 in array[np.isfinite(array).all(axis=1)]:
        draw.rectangle((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), outline=color)
    return np.asarray(canvas)


MAX_IMAGE_SIDE = 2048  # the longest side of a written image (of the grid, for a batch)


def shrink_step(shape: Sequence[int], layout: str = "auto") -> int:
    """The whole factor ``k`` by which an image (HW, HWC, CHW) or a batch (N x …) of this
    shape is thinned (every k-th pixel) so the written picture stays within
    :data:`MAX_IMAGE_SIDE`: 1 when it already does. Decided on the shape alone, before any
    pixel is copied, so a 10000 x 10000 image costs what its thinned version costs."""
    shape = tuple(int(n) for n in shape)
    per_row = 1
    if len(shape) == 4:
        per_row = int(math.ceil(math.sqrt(shape[0]))) if shape[0] else 1
        shape = shape[1:]
    if len(shape) == 2:
        height, width = shape
    elif len(shape) == 3:
        height, width = shape[1:] if _channels_first(shape, layout) else shape[:2]
    else:
        return 1
    limit = max(1, MAX_IMAGE_SIDE // per_row)
    return max(1, int(math.ceil(max(height, width) / limit)))


def thinned(image: np.ndarray, step: int, layout: str = "auto") -> np.ndarray:
    """A view of ``image`` (or a batch) keeping every ``step``-th row and column (no copy)."""
    if step <= 1:
        return image
    batch = image.ndim == 4
    single = image.shape[1:] if batch else image.shape
    chw = len(single) == 3 and _channels_first(single, layout)
    first = (1 if chw else 0) + (1 if batch else 0)
    index = [slice(None)] * image.ndim
    index[first] = index[first + 1] = slice(None, None, step)
    return image[tuple(index)]


def make_grid(images: Sequence[np.ndarray], ncols: Optional[int] = None, pad: int = 2) -> np.ndarray:
    """Tile HWC uint8 RGB images (sizes may differ) into one image, padded with black."""
    if len(images) == 0:
        raise RenderError("cannot make a grid of an empty batch")
    count = len(images)
    ncols = ncols or int(math.ceil(math.sqrt(count)))
    nrows = int(math.ceil(count / ncols))
    cell_h = max(img.shape[0] for img in images)
    cell_w = max(img.shape[1] for img in images)
    grid = np.zeros((nrows * (cell_h + pad) + pad, ncols * (cell_w + pad) + pad, 3), dtype=np.uint8)
    for index, img in enumerate(images):
        row, col = divmod(index, ncols)
        top, left = pad + row * (cell_h + pad), pad + col * (cell_w + pad)
        grid[top:top + img.shape[0], left:left + img.shape[1]] = img
    return grid


MIN_SIDE = 128  # smaller images are enlarged (by a whole factor) before overlays are drawn


def render_batch(images: np.ndarray, *, layout: str = "auto", mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None, bgr: bool = False, max_images: Optional[int] = None,
                 gt_keypoints: Optional[Sequence[Optional[np.ndarray]]] = None,
                 gt_visible: Optional[Sequence[Optional[np.ndarray]]] = None,
                 pred_keypoints: Optional[Sequence[Optional[np.ndarray]]] = None,
                 pred_scores: Optional[Sequence[Optional[np.ndarray]]] = None,
                 gt_boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
                 pred_boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
                 heatmaps: Optional[Sequence[Optional[np.ndarray]]] = None,
                 kpt_thr: float = 0.3, skeleton: Optional[Sequence[Tuple[int, int]]] = None,
                 min_side: int = MIN_SIDE) -> np.ndarray:
    """Render a batch (N x C x H x W, N x H x W x C, or one image) with overlays into a grid.

    Per-image overlay lists are indexed like the batch; a ``None`` entry draws nothing.
    Ground truth is green, predictions red (keypoints below ``kpt_thr`` are not drawn);
    boxes are ``M x 4`` xyxy pixels; ``heatmaps`` (K x h x w per image, in the image's frame)
    are blended in first (:func:`blend_heatmap`). Images whose shorter side is below ``min_side`` are
    enlarged by a whole factor (nearest neighbour, overlays scaled with them) before drawing:
    a 2-pixel keypoint dot on a 32-pixel crop hides the very thing it marks.
    """
    array = np.asarray(images)
    if array.ndim == 2:  # one grey H x W image
        array, layout = array[None, :, :, None], "HWC"
    elif array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise RenderError(f"expected images of rank 2-4, got shape {array.shape}")
    if array.shape[0] == 0:
        raise RenderError("cannot render an empty batch")
    if max_images is not None:
        array = array[:max_images]
    frames = [to_hwc(frame, layout) for frame in array]
    stacked = np.stack(frames)
    if mean is not None and std is not None:
        stacked = denormalize(stacked, mean, std, channel_axis=-1, bgr=bgr)
    elif bgr and stacked.shape[-1] == 3:
        stacked = stacked[..., ::-1]
    rgb = to_rgb(to_uint8(stacked))
    factor = max(1, -(-min_side // max(1, min(rgb.shape[1:3])))) if min_side else 1
    if factor > 1:
        rgb = rgb.repeat(factor, axis=1).repeat(factor, axis=2)
    def scale(points):
        return None if points is None else (np.asarray(points, dtype=np.float32) + 0.5) * factor - 0.5
    drawn: List[np.ndarray] = []
    for index, frame in enumerate(rgb):
        frame = np.ascontiguousarray(frame)
        heat = _pick(heatmaps, index)
        if heat is not None:
            frame = blend_heatmap(frame, heat)
        for box_list, colour in ((gt_boxes, GT_COLOR), (pred_boxes, PRED_COLOR)):
            chosen = _pick(box_list, index)
            if chosen is not None:
                frame = draw_boxes(frame, np.asarray(chosen, dtype=np.float32) * factor, colour)
        gt = scale(_pick(gt_keypoints, index))
        pred = scale(_pick(pred_keypoints, index))
        if gt is not None or pred is not None:
            frame = draw_keypoints(frame, gt=gt, pred=pred, scores=_pick(pred_scores, index),
                                   gt_visible=_pick(gt_visible, index), kpt_thr=kpt_thr, skeleton=skeleton)
        drawn.append(frame)
    return make_grid(drawn)


def blend_heatmap(frame: np.ndarray, heatmaps: np.ndarray, opacity: float = 0.65) -> np.ndarray:
    """``frame`` (H x W x 3 uint8) with predicted heatmaps (K x h x w, or one h x w) laid over it:
    the maximum over keypoints, resized to the frame, in a black-red-yellow ramp whose opacity
    follows the heat (cold areas keep the picture)."""
    heat = np.asarray(heatmaps, dtype=np.float32)
    heat = heat.max(axis=0) if heat.ndim == 3 else heat
    if heat.ndim != 2:
        raise RenderError(f"expected heatmaps K x h x w or h x w, got shape {np.asarray(heatmaps).shape}")
    # Heatmaps in [0, 1] (Gaussian targets, sigmoid outputs) are shown on that absolute scale, so
    # an untrained, flat map looks flat; larger values are scaled down to their peak.
    heat = np.clip(np.nan_to_num(heat), 0.0, None)
    peak = float(heat.max())
    heat = heat / peak if peak > 1.0 else heat
    height, width = frame.shape[:2]
    heat = np.asarray(PILImage.fromarray(heat).resize((width, height), _BILINEAR), dtype=np.float32)
    ramp = np.stack([np.clip(3 * heat, 0, 1), np.clip(3 * heat - 1, 0, 1), np.clip(3 * heat - 2, 0, 1)], axis=-1)
    alpha = (opacity * heat)[..., None]
    return (frame.astype(np.float32) * (1 - alpha) + ramp * 255 * alpha).round().astype(np.uint8)


def _pick(items: Optional[Sequence[Optional[np.ndarray]]], index: int) -> Optional[np.ndarray]:
    if items is None or index >= len(items):
        return None
    return items[index]
