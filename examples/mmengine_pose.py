"""A tiny top-down keypoint model trained by a real mmengine Runner, logged with unitb.

No mmpose needed: the samples are mmengine ``BaseDataElement`` objects shaped like mmpose's
(``gt_instances.keypoints``/``keypoints_visible``, ``pred_instances.keypoints``/
``keypoint_scores``), the model is a small conv net with a heatmap head, and validation
reports PCK. The hook is configured exactly as an mmpose config would::

    python examples/mmengine_pose.py --out runs --steps 64
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import uuid
from typing import List, Optional, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement, InstanceData
from torch.utils.data import Dataset

from synthetic import NUM_KPTS, SIZE, SKELETON, keypoint_images  # noqa: E402

HEATMAP = 16


class SyntheticKeypoints(Dataset):
    """mmpose-shaped samples over :func:`synthetic.keypoint_images`."""

    def __init__(self, length: int = 64, seed: int = 0):
        self.images, self.keypoints = keypoint_images(length, seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        img, kpts = self.images[index], self.keypoints[index]
        sample = BaseDataElement(metainfo=dict(img_shape=(SIZE, SIZE)))
        sample.gt_instances = InstanceData(keypoints=kpts[None], keypoints_visible=np.ones((1, NUM_KPTS), np.float32))
        # BGR order like mmcv's loader; the preprocessor converts to RGB.
        return dict(inputs=torch.from_numpy(img[..., ::-1].copy()).permute(2, 0, 1), data_samples=sample)


def heatmaps(kpts: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """N x K x 2 input-pixel keypoints -> N x K x H x W Gaussian targets."""
    scale = HEATMAP / SIZE
    grid = torch.arange(HEATMAP, dtype=torch.float32)
    cx = kpts[..., 0, None, None] * scale
    cy = kpts[..., 1, None, None] * scale
    return torch.exp(-((grid[None, None, None, :] - cx) ** 2 + (grid[None, None, :, None] - cy) ** 2) / (2 * sigma ** 2))


class TinyPoseNet(BaseModel):
    """Conv backbone + heatmap head; mmpose-style losses (loss_kpt) and accuracy (acc_pose)."""

    def __init__(self, channels: int = 16):
        super().__init__(data_preprocessor=dict(type="ImgDataPreprocessor", mean=[123.675, 116.28, 103.53],
                                                std=[58.395, 57.12, 57.375], bgr_to_rgb=True))
        self.backbone = torch.nn.Sequential(
            torch.nn.Conv2d(3, channels, 3, padding=1), torch.nn.BatchNorm2d(channels), torch.nn.ReLU(),
            torch.nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1), torch.nn.BatchNorm2d(channels * 2),
            torch.nn.ReLU(),
            torch.nn.Conv2d(channels * 2, channels * 2, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Conv2d(channels * 2, NUM_KPTS, 1)

    def forward(self, inputs, data_samples=None, mode: str = "tensor"):
        maps = self.head(self.backbone(inputs))
        if mode == "tensor":
            return maps
        if mode == "loss":
            target = heatmaps(torch.stack([torch.as_tensor(s.gt_instances.keypoints[0]) for s in data_samples]))
            loss = F.mse_loss(maps, target) * 100
            acc = (self._decode(maps)[0] - target.new_tensor(np.stack([s.gt_instances.keypoints[0] for s in data_samples]))
                   ).norm(dim=-1).lt(3).float().mean()
            return dict(loss_kpt=loss, acc_pose=acc.detach())
        kpts, scores = self._decode(maps)
        for sample, k, s in zip(data_samples, kpts, scores):
            sample.pred_instances = InstanceData(keypoints=k[None].cpu().numpy(), keypoint_scores=s[None].cpu().numpy())
        return data_samples

    @staticmethod
    def _decode(maps: torch.Tensor):
        n, k, h, w = maps.shape
        flat = maps.flatten(2)
        scores, index = flat.max(dim=-1)
        xs = (index % w).float() + 0.5
        ys = (index // w).float() + 0.5
        return torch.stack([xs, ys], dim=-1) * (SIZE / HEATMAP), scores.clamp(0, 1)


class PCKMetric(BaseMetric):
    """Fraction of keypoints within ``thr * SIZE`` pixels of the ground truth."""

    default_prefix = ""

    def __init__(self, thr: float = 0.1):
        super().__init__()
        self.thr = thr

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:  # the Evaluator hands samples over as dicts
            pred = np.asarray(sample["pred_instances"]["keypoints"])[0]
            gt = np.asarray(sample["gt_instances"]["keypoints"])[0]
            self.results.append(np.linalg.norm(pred - gt, axis=-1))

    def compute_metrics(self, results: List[np.ndarray]) -> dict:
        dists = np.concatenate(results)
        return {"PCK": float((dists < self.thr * SIZE).mean()), "EPE": float(dists.mean())}


def collate(batch):
    return dict(inputs=[b["inputs"] for b in batch], data_samples=[b["data_samples"] for b in batch])


def build_runner(work_dir: str, steps: int = 60, batch_size: int = 8, by_epoch: bool = True,
                 hook: Optional[dict] = None, clip_grad: Optional[dict] = None, resume: bool = False,
                 val_interval: Optional[int] = None, tensorboard_backend: bool = True, launcher: str = "none",
                 dataset_size: int = 64, seed: int = 0, load_from: Optional[str] = None,
                 tb_dir: Optional[str] = None, checkpoints: bool = True, local_backend: bool = False):
    """A Runner for the tiny pose model. ``tb_dir``: where TensorboardVisBackend writes
    (default: mmengine's ``work_dir/<timestamp>/vis_data``)."""
    from mmengine.runner import Runner

    import torch_adapter  # noqa: F401  (registers EnhancedTensorBoardHook)

    iters_per_epoch = math.ceil(dataset_size / batch_size)
    max_epochs = max(1, math.ceil(steps / iters_per_epoch))
    hook_cfg = dict(type="EnhancedTensorBoardHook", grad_norm_interval=5, scalar_interval=1,
                    train_image_interval=20, val_image_interval=1, max_layers_to_log=6, skeleton=SKELETON)
    hook_cfg.update(hook or {})
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=val_interval or 1)
    else:
        train_cfg = dict(by_epoch=False, max_iters=steps, val_interval=val_interval or iters_per_epoch)
    optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
    if clip_grad:
        optim_wrapper["clip_grad"] = clip_grad
    tb_backend = dict(type="TensorboardVisBackend")
    if tb_dir:
        tb_backend["save_dir"] = tb_dir
    backends = [tb_backend] if tensorboard_backend else [dict(type="LocalVisBackend")]
    if local_backend and tensorboard_backend:
        backends.append(dict(type="LocalVisBackend"))  # mmengine's scalars.json beside TensorBoard
    loader = lambda shuffle, length, s: dict(dataset=SyntheticKeypoints(length, s), batch_size=batch_size,
                                             sampler=dict(type="DefaultSampler", shuffle=shuffle),
                                             collate_fn=collate, num_workers=0)
    return Runner(
        model=TinyPoseNet(), work_dir=work_dir,
        train_dataloader=loader(True, dataset_size, seed), val_dataloader=loader(False, 16, seed + 1),
        val_evaluator=[PCKMetric()], train_cfg=train_cfg, val_cfg=dict(),
        optim_wrapper=optim_wrapper,
        param_scheduler=_schedule(max_epochs * iters_per_epoch if by_epoch else steps),
        default_hooks=dict(logger=dict(type="LoggerHook", interval=5),
                           checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, by_epoch=by_epoch)
                           if checkpoints else None),
        custom_hooks=[hook_cfg],
        # A unique name: mmengine keeps visualizers in a global registry by name, and two
        # runners started in the same second would otherwise share one (and its writer).
        visualizer=dict(type="Visualizer", vis_backends=backends, name=f"unitb-{uuid.uuid4().hex[:8]}"),
        randomness=dict(seed=seed), launcher=launcher, resume=resume, load_from=load_from,
        env_cfg=dict(dist_cfg=dict(backend="gloo")),
        # CPU DDP: device_ids must be None (mmengine passes LOCAL_RANK, meant for GPUs).
        cfg=dict(model_wrapper_cfg=dict(type="MMDistributedDataParallel", device_ids=None))
        if launcher != "none" else None,
        log_level="WARNING", default_scope="mmengine")


def _schedule(total: int) -> list:
    """Linear warm-up over the first third of the iterations, then cosine decay."""
    warm = max(1, total // 3)
    schedule = [dict(type="LinearLR", start_factor=0.2, by_epoch=False, begin=0, end=warm)]
    if total > warm:
        schedule.append(dict(type="CosineAnnealingLR", by_epoch=False, begin=warm, end=total, T_max=total - warm))
    return schedule


def vis_dir(work_dir: str) -> str:
    """The newest ``<timestamp>/vis_data`` folder mmengine made under ``work_dir``."""
    stamps = sorted(d for d in os.listdir(work_dir) if os.path.isdir(os.path.join(work_dir, d, "vis_data")))
    return os.path.join(work_dir, stamps[-1], "vis_data")


def main(argv: Optional[Sequence[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--activations", action="store_true", help="histograms of the backbone's outputs")
    args = parser.parse_args(argv)
    run_dir = os.path.join(args.out, "mmengine-pose")
    # Events straight into <out>/mmengine-pose (one TensorBoard run); checkpoints and
    # mmengine's text logs below it, where TensorBoard finds no event files.
    hook = dict(log_graph=True, embedding_layer="backbone")  # GRAPHS, PROJECTOR
    if args.activations:
        hook["activation_layers"] = ("backbone",)
    runner = build_runner(os.path.join(run_dir, "work_dir"), steps=args.steps, tb_dir=run_dir, hook=hook)
    runner.train()
    run_dir = runner.visualizer.get_backend("TensorboardVisBackend")._save_dir  # -2... beside another run
    print(f"mmengine-pose: events in {run_dir}")
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
