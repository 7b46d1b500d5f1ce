"""Launched by torchrun (2 CPU processes, gloo) from tests/test_torch_ddp.py."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
# mmengine's pytorch launcher calls torch.cuda.set_device(LOCAL_RANK) unconditionally; on a
# CPU-only machine that is the one thing standing between it and a gloo run.
if not torch.cuda.is_available():
    torch.cuda.set_device = lambda *args, **kwargs: None

import mmengine_pose  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

work_dir, tb_dir = sys.argv[1], sys.argv[2]
runner = mmengine_pose.build_runner(work_dir, steps=8, batch_size=4, launcher="pytorch", tb_dir=tb_dir,
                                    hook=dict(grad_norm_interval=2, scalar_interval=1, max_layers_to_log=2))
witness = {}


class Witness(Hook):
    """Records, inside optimizer.step, the norm of the (all-reduced) gradients applied."""

    def before_train(self, runner):
        runner.optim_wrapper.optimizer.register_step_pre_hook(
            lambda opt, a, k: witness.__setitem__(len(witness) + 1, float(torch.linalg.vector_norm(torch.stack(
                [p.grad.norm() for g in opt.param_groups for p in g["params"] if p.grad is not None])))))


    def after_train(self, runner):  # before the hook's after_run lets its recorder go
        hook = next(h for h in runner.hooks if type(h).__name__ == "EnhancedTensorBoardHook")
        state["has_recorder"] = hook.recorder is not None
        state["probe"] = hook.recorder is not None and hook.recorder.probe is not None


state = {}
runner.register_hook(Witness(), priority="VERY_HIGH")
runner.train()
print(json.dumps({"rank": int(os.environ["RANK"]), "has_recorder": state["has_recorder"], "probe": state["probe"],
                  "wrapped": type(runner.model).__name__, "witness": witness}), flush=True)
# Both ranks leave the group together and tear it down before the interpreter does: a gloo group
# still alive at exit, its peer already gone, can end a rank in std::terminate ("terminate called
# without an active exception", SIGABRT) while its C++ threads are destroyed.
torch.distributed.barrier()
torch.distributed.destroy_process_group()
