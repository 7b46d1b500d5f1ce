"""Train the tiny mmpose config with unitb's hook:  python examples/mmpose/train.py --out runs

Needs the mmpose extra (see README). Makes the synthetic COCO data first if it is missing.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # mmpose_compat, make_coco
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # mmengine checkpoints hold numpy objects


def build_runner(out: str, max_epochs: int = 2, resume: bool = False, batch_size: int = 8, **hook_overrides):
    """A Runner for tiny_topdown.py writing into ``<out>/mmpose-topdown``; ``hook_overrides``
    change EnhancedTensorBoardHook arguments (e.g. ``kpt_thr=0.0``)."""
    import mmpose_compat  # noqa: F401  (before mmpose.models is imported)
    from mmengine.config import Config
    from mmengine.runner import Runner

    import make_coco

    data_root = os.path.join(out, "tiny_coco") + "/"
    if not os.path.exists(os.path.join(data_root, "annotations", "val.json")):
        make_coco.main([data_root, "--train", "32", "--val", "16"])
    cfg = Config.fromfile(os.path.join(HERE, "tiny_topdown.py"))
    cfg.work_dir = os.path.join(out, "mmpose-topdown", "work_dir")
    cfg.visualizer.vis_backends = [dict(type="TensorboardVisBackend", save_dir=os.path.join(out, "mmpose-topdown"))]
    cfg.train_cfg.max_epochs = max_epochs
    cfg.resume = resume
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = data_root
        loader.batch_size = batch_size
    cfg.val_evaluator[0].ann_file = data_root + "annotations/val.json"
    cfg.custom_hooks[0].update(hook_overrides)
    return Runner.from_cfg(cfg)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    build_runner(args.out, args.epochs).train()
    run_dir = os.path.join(args.out, "mmpose-topdown")
    print(f"mmpose-topdown: events in {run_dir}")
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
