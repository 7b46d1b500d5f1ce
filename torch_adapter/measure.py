"""Cheap, native PyTorch measurements handed to the core as plain numbers."""
from __future__ import annotations

from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from torch_adapter import torch_internals
from unitb.life.layers import select_layers


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DDP / FSDP / mmengine wrappers and
    ``torch.compile`` (``OptimizedModule._orig_mod``), in any nesting."""
    while True:
        inner = torch_internals.compiled_inner(model)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def parameter_name(name: str) -> str:
    """A parameter's name as in the uncompiled model: a submodule compiled on its own
    (``model.backbone = torch.compile(model.backbone)``) puts ``_orig_mod.`` in the path."""
    return ".".join(part for part in name.split(".") if part != torch_internals.COMPILED_PART)


def named_parameters(model: torch.nn.Module) -> List[Tuple[str, torch.nn.Parameter]]:
    return [(parameter_name(n), p) for n, p in unwrap_model(model).named_parameters()]


def model_stats(model: torch.nn.Module) -> Tuple[int, int, float]:
    """(total parameters, trainable parameters, size in MB of parameters + buffers)."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    size = sum(p.numel() * p.element_size() for p in params)
    size += sum(b.numel() * b.element_size() for b in model.buffers())
    return total, trainable, size / (1024 * 1024)


def on_host(*groups: Optional[Mapping[str, object]]) -> tuple:
    """The same mappings with their one-element tensors as Python floats, copied to the host in
    one transfer per device (a loss on the GPU costs one sync at a due step, not one per value)."""
    found: Dict[torch.device, List[Tuple[int, str, torch.Tensor]]] = {}
    for index, group in enumerate(groups):
        for key, value in (group or {}).items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                found.setdefault(value.device, []).append((index, key, value))
    if not found:
        return groups
    out = [dict(group) if group is not None else None for group in groups]
    for device, entries in found.items():
        wide = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
        stacked = torch.stack([t.detach().reshape(()).to(wide) for _, _, t in entries])
        for (index, key, _), number in zip(entries, stacked.cpu().tolist()):
            out[index][key] = number  # type: ignore[index]
    return tuple(out)


def device_peak_mb() -> Optional[float]:
    """Peak CUDA memory allocated since the last call, in MiB (the allocator's own counter: no
    device sync); None on a run that has not touched CUDA."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    peak = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    return peak / 2 ** 20


def batch_size(batch) -> Optional[int]:
    """Samples in an mmengine data batch (``inputs`` as a list or a stacked tensor), a tensor
    or a sequence; None when it cannot tell."""
    if isinstance(batch, dict):
        batch = batch.get("inputs", batch.get("img"))
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, (list, tuple)) and batch:
        first = batch[0]
        if isinstance(first, torch.Tensor) and len(batch) == 2 and first.dim() > 1:
            return int(first.shape[0])  # (inputs, targets)
        return len(batch)
    return None


def learning_rates(optimizer) -> Dict[str, float]:
    """{group: lr}; group = the param group's ``name`` if set, else its index.

    Accepts a torch optimizer, an mmengine OptimWrapper, or an OptimWrapperDict
    (then the group is ``{optimizer name}.{group}``).
    """
    if optimizer is None:
        return {}
    if hasattr(optimizer, "optim_wrappers"):  # OptimWrapperDict
        out: Dict[str, float] = {}
        for name, wrapper in optimizer.optim_wrappers.items():
            for group, lr in learning_rates(wrapper).items():
                out[f"{name}.{group}"] = lr
        return out
    inner = getattr(optimizer, "optimizer", optimizer)
    out = {}
    for index, group in enumerate(getattr(inner, "param_groups", [])):
        lr = group.get("lr")
        if lr is None:
            continue
        out[str(group.get("name", index))] = float(lr)
    return out


def optimizer_hparams(optimizer) -> Dict[str, object]:
    """``optimizer`` (type name), ``learning_rate`` (the first group's initial LR) and the first
    group's other settings (``optimizer.momentum``, ``optimizer.weight_decay`` …) for hparams."""
    inner = torch_optimizer(optimizer)
    if inner is None or not inner.param_groups:
        return {}
    group = inner.param_groups[0]
    out: Dict[str, object] = {"optimizer": type(inner).__name__,
                              "learning_rate": float(group.get("initial_lr", group["lr"]))}
    for key, value in group.items():
        if key not in ("params", "lr", "initial_lr", "name") and isinstance(value, (bool, int, float, str, tuple)):
            out[f"optimizer.{key}"] = value
    return out


def torch_optimizer(optimizer) -> Optional[torch.optim.Optimizer]:
    """The torch optimizer inside an mmengine OptimWrapper (or the optimizer itself)."""
    if optimizer is None or hasattr(optimizer, "optim_wrappers"):
        return None
    inner = getattr(optimizer, "optimizer", optimizer)
    return inner if isinstance(inner, torch.optim.Optimizer) else None


class GradNormProbe:
    """Measures gradient norms where the gradients exist: in an optimizer step pre-hook.

    mmengine's ``OptimWrapper.update_params`` runs backward -> (clip) -> step -> zero_grad
    inside ``train_step``, so ``param.grad`` is None by ``after_train_iter``. The pre-hook
    runs after clipping and before the update, i.e. on the gradients actually applied. It
    does work only when ``should_capture()`` says so (a logging step): ``_foreach_norm``
    per device, one stack, and ONE device->host transfer for the global norm plus the
    selected layers (not one ``.item()`` per parameter).
    """

    def __init__(self, model: torch.nn.Module, max_layers: int, should_capture: Callable[[], bool],
                 keep_grads: bool = False):
        self.model = model
        self.max_layers = max_layers
        self.should_capture = should_capture
        self.keep_grads = keep_grads
        self.layer_names: Optional[List[str]] = None  # chosen once, stable for the run
        self.result: Optional[Tuple[float, Dict[str, float]]] = None
        self.grad_arrays: Dict[str, np.ndarray] = {}
        self._handle = None
        self._params: Optional[List[Tuple[str, torch.nn.Parameter]]] = None
        self._picked: Optional[torch.Tensor] = None

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self._handle = optimizer.register_step_pre_hook(self._pre_step)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
        self._handle = None

    def _pre_step(self, optimizer, args, kwargs) -> None:
        if not self.should_capture():
            return
        try:
            self.result = self.measure()
        except Exception:  # never break the optimizer step; the session reports it
            self.result = None

    @torch.no_grad()
    def measure(self) -> Optional[Tuple[float, Dict[str, float]]]:
        """(global norm, {layer: norm}) of the current gradients, with one host transfer.

        The parameter list and the selected layers are fixed at the first call; later calls
        only gather ``.grad`` (a parameter without a gradient that step is skipped).
        """
        if self._params is None:
            named = [(n, p) for n, p in named_parameters(self.model) if p.grad is not None]
            if not named:
                return None
            self._params = named
            picked = select_layers([n for n, _ in named], self.max_layers)
            self.layer_names = [named[i][0] for i in picked]
            self._picked = torch.tensor(picked, device=named[0][1].grad.device)
        grads = [p.grad for _, p in self._params]
        if any(g is None for g in grads):
            return self._measure_partial()
        if any(is_sharded(g) for g in grads):
            norms = sharded_global_and_layer_norms(grads)
        else:
            norms = global_and_layer_norms(grads)
        host = torch.cat([norms[-1:], norms.index_select(0, self._picked)]).cpu().tolist()  # the one transfer
        layers = dict(zip(self.layer_names, host[1:]))
        if self.keep_grads:
            self.grad_arrays = {n: _local(p.grad).detach().float().cpu().numpy() for n, p in self._params
                                if n in layers}
        return host[0], layers

    def _measure_partial(self) -> Optional[Tuple[float, Dict[str, float]]]:
        """Some parameters got no gradient this step (unused branches): measure those that did."""
        named = [(n, p.grad) for n, p in self._params if p.grad is not None]
        if not named:
            return None
        norms = global_and_layer_norms([g for _, g in named])
        index_of = {name: i for i, (name, _) in enumerate(named)}
        wanted = [index_of[n] for n in self.layer_names or [] if n in index_of]
        host = torch.cat([norms[-1:], norms[wanted]]).cpu().tolist()
        return host[0], {named[i][0]: value for i, value in zip(wanted, host[1:])}


def is_sharded(tensor) -> bool:
    """A DTensor (FSDP ``fully_shard``, tensor parallel): each rank holds part of it."""
    return hasattr(tensor, "placements") and hasattr(tensor, "to_local")


def sharded_global_and_layer_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """:func:`global_and_layer_norms` of gradients sharded across ranks: each rank squares the
    norms of its shards, ONE all-reduce sums them, then the roots are taken. A replicated
    tensor (or a plain one) counts once, from rank 0. Every rank must call this together."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    local, counted = [], []
    for grad in grads:
        if is_sharded(grad):
            local.append(grad.to_local())
            counted.append(any(p.is_shard() or p.is_partial() for p in grad.placements) or rank == 0)
        else:
            local.append(grad)
            counted.append(rank == 0)
    squares = torch.stack(torch_internals.foreach_norm(local, 2.0)).to(torch.float32) ** 2
    squares = squares * torch.tensor(counted, dtype=torch.float32, device=squares.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(squares)
    return torch.cat([squares.sqrt(), squares.sum().sqrt().reshape(1)])


def global_and_layer_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-tensor L2 norms followed by the global L2 norm, as one float32 tensor (on device)."""
    first = grads[0].device
    if all(g.device == first for g in grads):  # the common case: one stack, no scatter
        norms = torch.stack(torch_internals.foreach_norm(list(grads), 2.0)).to(torch.float32)
        return torch.cat([norms, torch.linalg.vector_norm(norms, 2).reshape(1)])
    by_device: Dict[torch.device, List[int]] = {}
    for i, g in enumerate(grads):
        by_device.setdefault(g.device, []).append(i)
    norms = torch.empty(len(grads), dtype=torch.float32, device=first)
    for indices in by_device.values():
        per = torch_internals.foreach_norm([grads[i] for i in indices], 2.0)
        norms[torch.tensor(indices, device=first)] = torch.stack(per).to(first, torch.float32)
    total = torch.linalg.vector_norm(norms, 2).reshape(1)
    return torch.cat([norms, total])


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if is_sharded(tensor) else tensor


def weight_arrays(model: torch.nn.Module, names: Optional[Sequence[str]],
                  max_layers: int) -> Tuple[List[str], Dict[str, np.ndarray]]:
    """Host copies of the selected parameters for weight histograms (selection is stable)."""
    named = named_parameters(model)
    if names is None:
        names = [named[i][0] for i in select_layers([n for n, _ in named], max_layers)]
    wanted = set(names)
    # Under FSDP each rank holds a shard: the histogram shows the writing rank's shard.
    arrays = {n: _local(p.detach()).float().cpu().numpy() for n, p in named if n in wanted}
    return list(names), arrays
