"""One validation pass of an mmengine Runner, as the hook sees it: the images it keeps, the
keypoints it matches by OKS for the PR curves, and the features of ``embedding_layer``;
written at the step the validation ran after."""
from __future__ import annotations

from typing import Mapping, Optional

from torch_adapter import measure, pose_matches
from torch_adapter.layer_features import LayerFeatures
from torch_adapter.mmengine_images import MMEngineImages
from torch_adapter.recorder import TorchRecorder
from unitb import schema
from unitb.life.options import LogOptions
from unitb.life.own_values import OwnValues
from unitb.write import protos


class ValidationPass:
    def __init__(self, options: LogOptions, images: MMEngineImages):
        self.options = options
        self.images = images
        self.matches = pose_matches.KeypointMatches()  # val/pr/keypoints_oks50, _oks75
        self.pr_curves = options.log_pr_curves  # off for the run once matching failed (options stay as given)
        self.features = LayerFeatures(options.embedding_layer) if options.embedding_layer else None

    def start(self, model, recorder: Optional[TorchRecorder]) -> None:
        self.images.start_val()
        self.matches.start()
        if self.features is not None and recorder is not None:
            self.features.start(measure.unwrap_model(model), recorder.run.warn_once)

    def add(self, recorder: TorchRecorder, model, batch_idx: int, data_batch, outputs) -> None:
        """One validation batch: its images, its keypoints matched by OKS, its features."""
        self.images.keep_val_batch(model, batch_idx, data_batch, outputs, recorder.run.warn_once)
        before = len(self.matches.similarities)
        if self.pr_curves or self.features is not None:
            try:
                self.matches.add_samples(outputs)
            except Exception as exc:  # a model whose samples look otherwise: no curve, one warning
                recorder.run.warn_once("pr", "oks", f"could not match validation keypoints by OKS "
                                      f"({type(exc).__name__}: {exc}); val/pr/keypoints_* skipped")
                self.pr_curves = False
        if self.features is not None:
            self.features.add_batch(data_batch, [f"{oks:.2f}" for oks in self.matches.similarities[before:]])

    def finish(self, recorder: TorchRecorder, step: int, metrics: Mapping[str, float]) -> None:
        """Write the pass at ``step``: metrics, images, embedding, PR curves."""
        if self.options.log_val_metrics:
            recorder.val_end(step, metrics)
        val_images = self.images.take_val()
        if val_images is not None:
            recorder.image("val", step, val_images)
        own = OwnValues(recorder.run)
        matched = self.matches.take()
        kept = self.features.finish() if self.features is not None else None
        if kept is not None:
            features, oks, images = kept
            own.embedding(schema.VAL_FEATURES, features, step, {"oks": oks} if any(oks) else None, images)
        for tag, (labels, scores) in (matched.items() if self.pr_curves else ()):
            own.pr_curve(tag, labels, scores, step, protos.PR_THRESHOLDS)
