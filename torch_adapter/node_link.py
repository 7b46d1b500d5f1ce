"""The exchange between the nodes of a ``torch.distributed`` job, for each node's ``system/*``
figures (:mod:`unitb.life.node_figures`): the job's own key-value store, which every process
of DDP, FSDP or mmengine's distributed launch already shares (``torchrun`` and ``env://`` set it
up), so nothing else is opened and nothing waits on a collective.

A node is a group of ``LOCAL_WORLD_SIZE`` processes (``torchrun``'s); its first process (local
rank 0) is the one that samples the machine. A job whose launcher does not say how many
processes a node runs is taken as one node: its figures stay the chief's.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import torch

from torch_adapter import torch_internals

KEY = "unitb/system/node{}"


class StoreNodeLink:
    """A node's latest sample under one key of the store; ``latest`` checks before it reads, so
    it never blocks on a node that has published nothing yet."""

    def __init__(self, store: Any, node: int, nodes: int) -> None:
        self._store = store
        self.node = node
        self.nodes = nodes

    def publish(self, payload: str) -> None:
        self._store.set(KEY.format(self.node), payload)

    def latest(self, node: int) -> Optional[str]:
        key = KEY.format(node)
        if not self._store.check([key]):
            return None
        return bytes(self._store.get(key)).decode()


def node_link() -> Optional[StoreNodeLink]:
    """This process's link when it is the first of its node in a job over several nodes; else None."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    try:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        world = dist.get_world_size()
        if per_node < 1 or local_rank != 0 or world // per_node < 2:
            return None
        node = int(os.environ.get("GROUP_RANK", dist.get_rank() // per_node))
        store = torch_internals.default_store()
    except (ValueError, RuntimeError, AttributeError):  # a launcher's odd variables, a store torch hides
        return None
    return None if store is None else StoreNodeLink(store, node, world // per_node)
