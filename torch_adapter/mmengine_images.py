"""What the mmengine hook keeps for ``train/image`` and ``val/image``, and the model graph.

Only ``max_train_images`` of the first training batch are kept, copied to the CPU (never the
whole batch, never a device tensor held across steps); validation batches are sampled every
``val_image_interval``-th batch until ``max_train_images`` are kept. Predictions for the
kept training images are made at the image step, so ``train/image`` shows progress.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from torch_adapter import images as image_utils
from torch_adapter import measure
from torch_adapter.graph import write_module_graph
from unitb.life.options import LogOptions

Warn = Callable[[str, str, str], None]  # RunLogger.warn_once(key, detail, message)


class MMEngineImages:
    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self.first_batch: Optional[Dict[str, object]] = None  # {} once keeping it failed
        self.val_batches: List[image_utils.ImageBatch] = []

    # ------------------------------------------------------------------ training
    def keep_first_batch(self, data_batch, warn_once: Warn) -> None:
        if self.first_batch is not None or not isinstance(data_batch, dict) or not self.options.log_train_images:
            return
        limit = self.options.max_train_images
        try:
            inputs = image_utils.host_images(data_batch["inputs"], limit)
            samples = list(data_batch.get("data_samples") or [])[:limit]
            self.first_batch = {"inputs": torch.from_numpy(np.ascontiguousarray(inputs)), "data_samples": samples}
        except Exception as exc:
            warn_once("image", "cache", f"could not keep the first training batch for train/image "
                      f"({type(exc).__name__}: {exc}); train images are off")
            self.first_batch = {}

    def train_due(self, step: int) -> bool:
        return bool(self.options.log_train_images and self.first_batch
                    and self.options.train_image_policy.should_log(step))

    def train_batch(self, model: torch.nn.Module) -> image_utils.ImageBatch:
        """The kept images with the model's current predictions (when it can predict)."""
        model = measure.unwrap_model(model)
        batch = self.first_batch or {}
        samples = batch["data_samples"]
        with_predictions = False
        if hasattr(model, "test_step") and samples:
            was_training = model.training
            try:
                model.eval()
                with torch.no_grad():
                    samples = model.test_step({"inputs": list(batch["inputs"]), "data_samples": samples})
                with_predictions = True
            except Exception:
                samples = batch["data_samples"]
            finally:
                model.train(was_training)
        return image_utils.image_batch(model, batch["inputs"], samples, self.options.max_train_images,
                                       with_predictions=with_predictions)

    # ------------------------------------------------------------------ validation
    def start_val(self) -> None:
        self.val_batches = []

    def keep_val_batch(self, model: torch.nn.Module, batch_idx: int, data_batch, outputs, warn_once: Warn) -> None:
        opts = self.options
        if not opts.log_val_images or batch_idx % opts.val_image_interval != 0:
            return
        room = opts.max_train_images - sum(b.images.shape[0] for b in self.val_batches)
        if room <= 0 or not isinstance(data_batch, dict):
            return
        try:
            samples = outputs if outputs else data_batch.get("data_samples")
            self.val_batches.append(image_utils.image_batch(measure.unwrap_model(model), data_batch["inputs"],
                                                            samples, room, with_predictions=True))
        except Exception as exc:
            warn_once("image", "val", f"could not read validation images ({type(exc).__name__}: {exc}); "
                      "val/image skipped")

    def take_val(self) -> Optional[Callable[[], image_utils.ImageBatch]]:
        """The validation images kept since :meth:`start_val`, merged later (on the writer
        thread); None when there are none."""
        if not self.val_batches:
            return None
        kept, self.val_batches = self.val_batches, []
        return lambda: concat(kept)


def concat(batches: List[image_utils.ImageBatch]) -> image_utils.ImageBatch:
    first = batches[0]
    merged = image_utils.ImageBatch(images=np.concatenate([b.images for b in batches]), mean=first.mean,
                                    std=first.std, bgr=first.bgr)
    for b in batches:
        merged.gt += b.gt
        merged.gt_visible += b.gt_visible
        merged.pred += b.pred
        merged.scores += b.scores
        merged.heatmaps += b.heatmaps or [None] * b.images.shape[0]
    if not any(h is not None for h in merged.heatmaps):
        merged.heatmaps = []
    return merged


def write_graph(sink, model: torch.nn.Module, data_batch, warn_once: Warn) -> None:
    """The model's graph in the GRAPHS tab, traced in mmengine's ``mode="tensor"`` on one
    preprocessed input; a model that cannot be traced gets one warning."""
    model = measure.unwrap_model(model)

    class TensorMode(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, inputs):
            return self.inner(inputs, None, mode="tensor")

    try:
        with torch.no_grad():
            inputs = model.data_preprocessor(data_batch, False)["inputs"]
    except Exception as exc:
        warn_once("graph", "", f"log_graph: could not preprocess a batch to trace the model ({type(exc).__name__}: "
                  f"{exc}); graph skipped")
        return
    write_module_graph(sink, TensorMode(model), inputs[:1], warn_once)
