"""Launched by torchrun from tests/test_torch_ddp.py as two nodes of one CPU process each (gloo):
a plain loop over a model sharded with FSDP ``fully_shard``, logged with TorchLogger on every
rank, sampling the machine every 0.1 s. Node 1 holds 300 MB more than node 0, so its figures
tell themselves apart from the chief's."""
import json
import os
import sys
import time

import numpy as np
import psutil
import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard

import unitb

held = np.ones(300 * 2 ** 20, np.uint8) if os.environ["GROUP_RANK"] == "1" else None
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                            torch.nn.Linear(16, 1))
for layer in model:
    if isinstance(layer, torch.nn.Linear):
        fully_shard(layer)
fully_shard(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
witness, shard_only = {}, {}
state = {"step": 0}


def record(opt, args, kwargs):
    """Independent witness: the whole gradient (all-gathered), and rank 0's shard alone."""
    grads = [p.grad for g in opt.param_groups for p in g["params"]]
    witness[state["step"]] = float(torch.linalg.vector_norm(torch.stack([g.full_tensor().norm() for g in grads])))
    shard_only[state["step"]] = float(torch.linalg.vector_norm(torch.stack([g.to_local().norm() for g in grads])))


optimizer.register_step_pre_hook(record)
logger = unitb.TorchLogger(sys.argv[1], model=model, optimizer=optimizer, grad_norm_interval=2, scalar_interval=1,
                           max_layers_to_log=3, system_interval=0.1)
for step in range(1, 7):
    state["step"] = step
    g = torch.Generator().manual_seed(step * 10 + rank)
    x, y = torch.randn(8, 6, generator=g), torch.randn(8, 1, generator=g)
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    logger.log_step(step, loss=loss.item())
    time.sleep(0.15)  # a few samples of the machine a step
logger.close()
with open(os.path.join(sys.argv[2], f"report{rank}.json"), "w") as handle:  # stdout of ranks interleaves
    json.dump({"rank": rank, "writes": logger.run_dir is not None, "peer": logger.recorder is None,
               "witness": witness, "shard_only": shard_only,
               "rss_mb": psutil.Process().memory_info().rss / 2 ** 20}, handle)
# Both ranks leave together: rank 0 is still closing its writer when rank 1 is done, and gloo can
# abort a process that tears its group down while the peer's connection is still in use.
dist.barrier()
dist.destroy_process_group()
