"""Your own values, at unitb's step, through the same writer: one API on all four entry points.

``log_scalar``, ``log_scalars``, ``log_histogram``, ``log_image`` (optionally with keypoint and
box overlays from :mod:`unitb.write.render`), ``log_figure`` (matplotlib), ``log_text``,
``log_pr_curve`` (the PR CURVES tab) and ``log_embedding`` (the PROJECTOR tab,
:mod:`unitb.write.projector`) exist on the
mmengine hook, ``TorchLogger``, ``TFCallback`` and ``TFLogger`` alike (:class:`OwnValuesAPI`).
Without ``step=`` a value lands at the entry point's current step: the last training step it
logged (the iterations completed, for Keras).

- Tags are yours: ``"my/metric"`` stays ``my/metric`` (sanitised like the schema's tags); ``unitb
  diff`` reports tags outside the schema as the run's own, never as a mismatch.
- Bad input — a non-finite or non-numeric scalar, an array of the wrong shape, an unknown
  type — gets one warning per tag and is skipped; nothing is raised into training.
- Images, histograms and figures are prepared on the writer thread, as unitb's own are;
  only a host copy of the data is taken on the caller's thread.
"""
from __future__ import annotations

import functools
import io
import math
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np

from unitb import schema
from unitb.files.png import png_pixels
from unitb.write import projector
from unitb.write import protos
from unitb.write import render
from unitb.write.writer import RunLogger, as_number
from unitb.notices import default_warn


_tag = functools.lru_cache(maxsize=4096)(schema.sanitize)  # a loop logs the same few tags every step


class OwnValues:
    """Writes a user's values into one run (the shared part behind :class:`OwnValuesAPI`)."""

    def __init__(self, run: RunLogger) -> None:
        self.run = run

    def _skip(self, tag: str, why: str) -> None:
        self.run.warn_once("own", tag, f"{tag}: {why}; skipped (said once per tag)")

    def scalar(self, tag: str, value: object, step: int) -> None:
        tag = _tag(tag)
        number = as_number(value)
        if number is None:
            self._skip(tag, f"not a number ({type(value).__name__})")
        elif not math.isfinite(number):
            self.run.left_out(tag, number, step)
            self._skip(tag, f"non-finite value {number}")
        else:
            self.run.write("scalar", lambda: self.run.sink.write_scalar(tag, number, int(step)))

    def histogram(self, tag: str, values: object, step: int) -> None:
        tag = _tag(tag)
        try:
            flat = np.asarray(_host(values), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            self._skip(tag, f"not an array of numbers ({exc})")
            return
        finite = flat[np.isfinite(flat)]
        if finite.size == 0:
            self._skip(tag, "no finite values")
            return
        if finite.size < flat.size:
            self._skip(tag + ":nonfinite", f"{flat.size - finite.size} non-finite value(s) left out")
        self.run.write("histogram", lambda: self.run.sink.write_histogram(tag, finite, int(step)), heavy=True)

    def image(self, tag: str, image: object, step: int, keypoints: Optional[object] = None,
              boxes: Optional[object] = None, scores: Optional[object] = None, kpt_thr: float = 0.3,
              skeleton: Optional[Sequence[Tuple[int, int]]] = None) -> None:
        """One image (HW, HWC or CHW, uint8 or floats in [0, 1]) or a batch (N x ...), drawn
        as a grid; ``keypoints`` (K x 2, or one per image) and ``boxes`` (M x 4 xyxy) overlaid."""
        tag = _tag(tag)
        try:
            view = _host(image)
            step_ = render.shrink_step(np.shape(view))
            if step_ > 1:  # thinned before the copy: memory and encoding stay bounded
                self.run.warn_once("own", tag + ":size", f"{tag}: an image of shape {tuple(np.shape(view))} is over "
                                   f"{render.MAX_IMAGE_SIDE} pixels on its long side; written at 1/{step_} of its size "
                                   "(said once per tag)")
                view = render.thinned(np.asarray(view), step_)
            array = np.array(view)  # a copy: the caller may reuse its buffer
        except Exception as exc:
            self._skip(tag, f"not an image ({exc})")
            return
        batch = array.ndim == 4

        def per_image(values, coords: int = 0):
            if values is None:
                return None
            values = _host(values)
            if step_ > 1 and coords:  # keypoints (x, y) and boxes (x1, y1, x2, y2) follow the thinned pixels
                values = np.array(values, dtype=np.float64)
                values[..., :coords] /= step_
            return list(values) if batch else [values]
        overlays = dict(pred_keypoints=per_image(keypoints, 2), pred_scores=per_image(scores),
                        pred_boxes=per_image(boxes, 4))
        try:  # the shape is checked here, on the caller's thread, so a bad one is named at once
            render.to_hwc(array[0] if batch else array)
        except render.RenderError as exc:
            self._skip(tag, str(exc))
            return

        self.run.tagged_image(tag, int(step), lambda: render.render_batch(array, kpt_thr=kpt_thr, skeleton=skeleton,
                                                                            **overlays), tag)

    def figure(self, tag: str, figure: object, step: int, close: bool = True) -> None:
        """A matplotlib figure written as an image. With ``close`` (the default) the figure is
        taken out of pyplot now and drawn on the writer thread, through its own Agg canvas: the
        caller no longer holds it, so drawing it later shows it as it was given, and the training
        thread does not wait for ``savefig``. With ``close=False`` the caller keeps the figure
        (and may change it), so it is drawn now, on the caller's thread."""
        tag = _tag(tag)
        savefig = getattr(figure, "savefig", None)
        if not callable(savefig):
            self._skip(tag, f"not a matplotlib figure ({type(figure).__name__})")
            return
        if not close:
            buffer = io.BytesIO()
            try:
                savefig(buffer, format="png")
            except Exception as exc:
                self._skip(tag, f"could not draw the figure ({type(exc).__name__}: {exc})")
                return
            self.run.tagged_image(tag, int(step), lambda: png_pixels(buffer.getvalue()), tag)
            return
        try:
            import matplotlib.pyplot as plt
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            plt.close(figure)  # type: ignore[arg-type]  # out of pyplot: nobody else draws it now
            canvas = FigureCanvasAgg(figure)  # type: ignore[arg-type]  # its own canvas, off any GUI
        except Exception as exc:
            self._skip(tag, f"could not take the figure ({type(exc).__name__}: {exc})")
            return

        def draw() -> np.ndarray:
            canvas.draw()
            return np.asarray(canvas.buffer_rgba())[..., :3].copy()
        self.run.tagged_image(tag, int(step), draw, f"the figure {tag}")

    def embedding(self, tag: str, features: object, step: int, metadata: Any = None, images: Any = None) -> None:
        """Points for the PROJECTOR tab (:mod:`unitb.write.projector`), checked here, written on the
        writer thread."""
        try:
            array = projector.check(_host(features), metadata, images)
            projector.folder_name(tag)
            labels = metadata if metadata is None or isinstance(metadata, Mapping) else list(metadata)
            pictures = None if images is None else np.array(_host(images))
        except (projector.ProjectorError, TypeError, ValueError) as exc:
            self._skip(_tag(tag), str(exc))
            return
        run_dir = self.run.sink.logdir
        self.run.write("embedding", lambda: projector.write_embedding(run_dir, tag, int(step), array, labels, pictures),
                       heavy=True)

    def pr_curve(self, tag: str, labels: object, scores: object, step: int, num_thresholds: int) -> None:
        """A precision-recall curve for the PR CURVES tab (:func:`unitb.write.protos.pr_curve_summary`)."""
        tag = _tag(tag)
        try:
            truth = np.asarray(_host(labels)).astype(bool)
            score = np.asarray(_host(scores), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            self._skip(tag, f"labels and scores must be arrays ({exc})")
            return
        if truth.shape != score.shape or score.size == 0:
            self._skip(tag, f"labels {truth.shape} and scores {score.shape} must have one shape, not empty")
        elif not np.all(np.isfinite(score)) or score.min() < 0 or score.max() > 1:
            self._skip(tag, "scores must be finite and in [0, 1]")
        elif isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) or num_thresholds < 2:
            self._skip(tag, f"num_thresholds must be an int >= 2, got {num_thresholds!r}")
        else:
            summary = lambda: protos.pr_curve_summary(tag, truth, score, num_thresholds)  # noqa: E731
            self.run.write("pr_curve", lambda: self.run.sink.write_summary(summary(), int(step)), heavy=True)

    def text(self, tag: str, text: object, step: int) -> None:
        tag = _tag(tag)
        if not isinstance(text, str):
            self._skip(tag, f"not text ({type(text).__name__})")
            return
        # A long text is built into its record on the writer thread, as an image is (a 10 MB
        # text costs ~50 ms of protobuf); a short one is written at once, as a scalar is.
        self.run.write("text", lambda: self.run.sink.write_summary(protos.text_summary(tag, text), int(step)),
                       heavy=len(text) >= LONG_TEXT)


LONG_TEXT = 64 * 1024  # characters from which a text is a heavy record (see OwnValues.text)


def _host(value: object) -> Any:
    """A numpy view of a torch or TensorFlow tensor (anything else as it is)."""
    detach = getattr(value, "detach", None)
    if callable(detach):
        value = detach().cpu()
    numpy = getattr(value, "numpy", None)
    return numpy() if callable(numpy) else value


class OwnValuesAPI:
    """The ``log_*`` methods of every entry point. An entry point provides
    :meth:`_own_target`: the run to write to (None when this process does not write: not the
    chief, logging off) and its current step."""

    def _own_target(self) -> Tuple[Optional[RunLogger], int]:
        raise NotImplementedError

    def _own_closed(self) -> Optional[str]:
        """Why a value cannot be written now (None: this process does not write, silently)."""
        return None

    def _own(self, step: Optional[int]) -> Tuple[Optional[OwnValues], int]:
        run, current = self._own_target()
        if run is None:
            why = self._own_closed()
            said = self.__dict__.setdefault("_own_said", set())
            if why and why not in said:
                said.add(why)
                default_warn(f"unitb: {why}; values logged then are skipped")
            return None, 0
        if step is not None and (isinstance(step, bool) or as_number(step) is None):
            run.warn_once("own", "step", f"step must be an int, got {step!r}; the current step is used")
            step = None
        return OwnValues(run), int(current if step is None else as_number(step))  # type: ignore[arg-type]

    def log_scalar(self, tag: str, value: object, step: Optional[int] = None) -> None:
        """Write one scalar of your own.

        Args:
            tag: Any tag, such as ``"my/metric"``; a tag of the schema's families is yours to fill too.
            value: A number, a 0-d array or tensor; NaN or Inf is left out and counted as an anomaly.
            step: Where it lands; None: the current training step.
        """
        own, at = self._own(step)
        if own is not None:
            own.scalar(tag, value, at)

    def log_scalars(self, values: Mapping[str, object], step: Optional[int] = None) -> None:
        """Write several scalars at one step.

        Args:
            values: ``{"my/metric": 0.5, ...}``; each as :meth:`log_scalar` takes it.
            step: Where they land; None: the current training step.
        """
        own, at = self._own(step)
        if own is not None:
            for tag, value in values.items():
                own.scalar(str(tag), value, at)

    def log_histogram(self, tag: str, values: object, step: Optional[int] = None) -> None:
        """Write a histogram of ``values`` (any shape; non-finite values are left out and counted).

        Args:
            tag: Its tag, such as ``"activations/backbone"``.
            values: An array or tensor.
            step: Where it lands; None: the current training step.
        """
        own, at = self._own(step)
        if own is not None:
            own.histogram(tag, values, at)

    def log_image(self, tag: str, image: object, step: Optional[int] = None, *, keypoints: object = None,
                  boxes: object = None, scores: object = None, kpt_thr: float = 0.3,
                  skeleton: Optional[Sequence[Tuple[int, int]]] = None) -> None:
        """Write an image, or a batch of images as one grid, with keypoints and boxes drawn over it.

        Args:
            tag: Its tag, such as ``"val/my_image"``.
            image: H x W [x C] or N x H x W [x C], uint8 or floats in [0, 1].
            step: Where it lands; None: the current training step.
            keypoints: K x 2 (or N x K x 2) pixel coordinates, drawn red.
            boxes: xyxy pixel boxes, one list per image of a batch.
            scores: One score per keypoint; those below ``kpt_thr`` are not drawn.
            kpt_thr: The score a keypoint needs to be drawn.
            skeleton: Pairs of keypoint indices joined by a line.
        """
        own, at = self._own(step)
        if own is not None:
            own.image(tag, image, at, keypoints=keypoints, boxes=boxes, scores=scores, kpt_thr=kpt_thr,
                      skeleton=skeleton)

    def log_figure(self, tag: str, figure: object, step: Optional[int] = None, close: bool = True) -> None:
        """Write a matplotlib figure as an image.

        Args:
            tag: Its tag.
            figure: A ``matplotlib.figure.Figure``.
            step: Where it lands; None: the current training step.
            close: Close the figure once drawn (False: it stays open for you).
        """
        own, at = self._own(step)
        if own is not None:
            own.figure(tag, figure, at, close=close)

    def log_embedding(self, tag: str, features: object, metadata: object = None, images: object = None,
                      step: Optional[int] = None) -> None:
        """Write points for the PROJECTOR tab: the same files from either framework.

        Args:
            tag: The embedding's name, such as ``"val/features"``.
            features: N x D.
            metadata: One label per point: a list, or a dict of columns.
            images: One image per point (N x H x W [x C]), shown as a sprite.
            step: Where it lands; None: the current training step.
        """
        own, at = self._own(step)
        if own is not None:
            own.embedding(tag, features, at, metadata, images)

    def log_pr_curve(self, tag: str, labels: object, scores: object, step: Optional[int] = None,
                     num_thresholds: int = protos.PR_THRESHOLDS) -> None:
        """Write a precision-recall curve for the PR CURVES tab.

        Args:
            tag: Its tag, such as ``"val/pr/boxes_iou50"``.
            labels: Ground truth, bool: detections matched to boxes at an IoU threshold, keypoints
                matched by OKS, a classifier's targets.
            scores: In [0, 1], the same shape as ``labels``.
            step: Where it lands; None: the current training step.
            num_thresholds: Points on the curve.
        """
        own, at = self._own(step)
        if own is not None:
            own.pr_curve(tag, labels, scores, at, num_thresholds)

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        """Write Markdown text for the TEXT tab.

        Args:
            tag: Its tag.
            text: Markdown.
            step: Where it lands; None: the current training step.
        """
        own, at = self._own(step)
        if own is not None:
            own.text(tag, text, at)
