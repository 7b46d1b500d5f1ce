"""Train the tiny mmpose config with unitb's hook:  python examples/mmpose/train.py --out runs --steps 60

Needs mmpose (scripts/install-mmpose.sh, see docs/getting-started.md). Makes the synthetic COCO data first if it is missing.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import uuid
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # mmpose_compat, make_coco
# torch >= 2.6 loads checkpoints weights-only: the hook allow-lists what mmengine checkpoints
# hold, so resume=True needs no TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.

RUN_NAME = "mmpose-topdown"
TRAIN_IMAGES, VAL_IMAGES = 32, 16


def build_runner(out: str, max_epochs: int = 2, resume: bool = False, batch_size: int = 8,
                 val_interval: int = 1, checkpoints: bool = True, cfg_options: Optional[dict] = None,
                 **hook_overrides):
    """A Runner for tiny_topdown.py writing into ``<out>/mmpose-topdown`` (events, ``work_dir``
    and the generated ``data``); ``cfg_options`` are merged last, as mmengine's ``--cfg-options``
    (``{"optim_wrapper.optimizer.lr": 0.002}``); ``hook_overrides`` change
    EnhancedTensorBoardHook arguments (e.g. ``kpt_thr=0.0``)."""
    import mmpose_compat  # noqa: F401  (before mmpose.models is imported)
    from mmengine.config import Config
    from mmengine.runner import Runner

    import make_coco

    run_dir = os.path.join(out, RUN_NAME)
    data_root = os.path.join(run_dir, "data") + "/"
    if not os.path.exists(os.path.join(data_root, "annotations", "val.json")):
        make_coco.main([data_root, "--train", str(TRAIN_IMAGES), "--val", str(VAL_IMAGES)])
    cfg = Config.fromfile(os.path.join(HERE, "tiny_topdown.py"))
    cfg.work_dir = os.path.join(run_dir, "work_dir")
    cfg.visualizer.vis_backends = [dict(type="TensorboardVisBackend", save_dir=run_dir)]
    # mmengine keeps visualizers in a global registry by name: a second Runner in the same
    # process would otherwise get the first one's (and write into the first run's folder).
    cfg.visualizer.name = f"unitb-mmpose-{uuid.uuid4().hex[:8]}"
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = val_interval
    cfg.resume = resume
    if not checkpoints:
        cfg.default_hooks.checkpoint = None
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = data_root
        loader.batch_size = batch_size
    cfg.val_evaluator[0].ann_file = data_root + "annotations/val.json"
    cfg.custom_hooks[0].update(hook_overrides)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return Runner.from_cfg(cfg)


def epochs_for(steps: int, batch_size: int = 8) -> int:
    """Whole epochs covering at least ``steps`` optimizer steps."""
    return max(1, math.ceil(steps / math.ceil(TRAIN_IMAGES / batch_size)))


def main(argv: Optional[list] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Inside a sweep's trial the run goes into the trial's folder (the agent sets UNITB_SWEEP_LOGDIR).
    parser.add_argument("--out", default=os.environ.get("UNITB_SWEEP_LOGDIR", "runs"))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (rounded up to whole epochs)")
    parser.add_argument("--epochs", type=int, default=2, help="used when --steps is not given")
    parser.add_argument("--no-checkpoints", action="store_true",
                        help="skip CheckpointHook (a ResNet-18 checkpoint with Adam state is ~140 MB)")
    from mmengine.config import DictAction

    parser.add_argument("--activations", action="store_true",
                        help="histograms of the backbone's and the head's outputs (ACTIVATIONS: activations/*)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, metavar="KEY=VALUE",
                        help="override config settings, as mmengine's tools/train.py (a sweep passes its parameters "
                             "here through ${args_no_hyphens})")
    args = parser.parse_args(argv)
    epochs = epochs_for(args.steps) if args.steps else args.epochs
    # About four validations however long the run (mmengine always validates the last epoch).
    hook = dict(activation_layers=("backbone", "head.final_layer")) if args.activations else {}
    runner = build_runner(args.out, epochs, val_interval=max(1, epochs // 4), checkpoints=not args.no_checkpoints,
                          cfg_options=args.cfg_options, **hook)
    runner.train()
    # <out>/mmpose-topdown, or -2, -3... when a fresh run found another run there (unitb.folder.versions)
    run_dir = runner.visualizer.get_backend("TensorboardVisBackend")._save_dir
    print(f"{RUN_NAME}: events in {run_dir}")
    return run_dir


if __name__ == "__main__":
    main(sys.argv[1:])
