"""The exchange between the workers of a ``tf.distribute`` multi-worker job, for each machine's
``system/*`` figures (:mod:`unitb.life.node_figures`): the key-value store of TensorFlow's
coordination service, which every worker of ``MultiWorkerMirroredStrategy`` already joins, so
nothing else is opened and nothing waits on a collective.

Each worker (and the chief, where the cluster names one) is taken as a machine of its own, as
multi-worker jobs are laid out: the chief is node 0, the workers follow in their order.
"""
from __future__ import annotations

from typing import Optional

from tf_adapter import tf_internals
from tf_adapter.measure import task_in_cluster

KEY = "unitb/system/node{}"
NO_WAIT_MS = 1  # a read of a key not yet published gives up after this long


class CoordinationNodeLink:
    """A node's latest sample under one key of the coordination service; a key cannot be
    overwritten there, so publishing deletes the one before (the chief, reading between the two,
    finds none and takes the next)."""

    def __init__(self, store, node: int, nodes: int) -> None:
        self._store = store
        self.node = node
        self.nodes = nodes
        self._published = False

    def publish(self, payload: str) -> None:
        tf_internals.store_set(self._store, KEY.format(self.node), payload, replace=self._published)
        self._published = True

    def latest(self, node: int) -> Optional[str]:
        return tf_internals.store_get(self._store, KEY.format(node), NO_WAIT_MS)


def node_link() -> Optional[CoordinationNodeLink]:
    """This worker's link in a job over several workers whose coordination service is up; else None."""
    task_type, task_id, cluster = task_in_cluster()
    if task_type not in ("chief", "worker"):
        return None
    chiefs = len(cluster.get("chief") or [])
    nodes = chiefs + len(cluster.get("worker") or [])
    if nodes < 2:
        return None
    store = tf_internals.coordination_store()  # None: no strategy over the cluster yet
    if store is None:
        return None
    return CoordinationNodeLink(store, 0 if task_type == "chief" else chiefs + task_id, nodes)
