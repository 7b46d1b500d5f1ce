"""Every node's machine figures in a run over several machines, written by the chief alone.

Only the chief writes a run, but the chief's machine is one of several: averaging the nodes
would hide the one that is short of memory, and mixing them would draw one line out of several
machines. So each other node's first process (local rank 0) samples its own machine every
``system_interval`` seconds (:class:`NodeReporter`) and hands the figures to the chief through a
:class:`NodeLink`, a small key-value exchange the framework already keeps for its workers (the
torch adapter's is ``torch.distributed``'s store, the TensorFlow adapter's the coordination
service of a multi-worker strategy). The chief writes them under
``system/node{k}/…`` (:func:`unitb.schema.system_node`) at the step it stands at, beside its own
``system/node0/…`` — in a run over several machines every node is named, so no figure reads as
the whole job's; a run on one machine keeps the plain ``system/…`` names.

The exchange is never waited on: a node publishes its latest sample (overwriting the one before)
and the chief takes what is there when it samples, once per new sample. A link that fails (the
chief's process gone at the end of the job) stops that node's figures with one line, never
training.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, Dict, Optional, Protocol

from unitb import schema


class NodeLink(Protocol):
    """The exchange between the nodes of one job: ``node`` is this process's (0: the chief's),
    ``nodes`` how many there are."""

    node: int
    nodes: int

    def publish(self, payload: str) -> None:
        """Make ``payload`` this node's latest sample (replacing the one before)."""

    def latest(self, node: int) -> Optional[str]:
        """Node ``node``'s latest sample, or None when it has published none; never waits."""


class NodeFigures:
    """The chief's side: its own figures named as node 0, and each other node's newest sample
    once (a node that publishes slower than the chief samples is not written twice)."""

    def __init__(self, link: NodeLink, warn: Callable[[str], None]) -> None:
        self._link = link
        self._warn = warn
        self._seen: Dict[int, float] = {}  # node -> time of the last sample written
        self._failed = False

    def named(self, own: Dict[str, float]) -> Dict[str, float]:
        """``own`` (this machine's figures) and every other node's new ones, each under its node's name."""
        values = {schema.system_node(self._link.node, tag): value for tag, value in own.items()}
        for node in range(self._link.nodes):
            if node != self._link.node and not self._failed:
                values.update(self._new_sample(node))
        return values

    def _new_sample(self, node: int) -> Dict[str, float]:
        try:
            payload = self._link.latest(node)
        except Exception as exc:
            self._failed = True
            self._warn(f"unitb: the other nodes' figures stop here: their exchange failed "
                       f"({type(exc).__name__}: {exc})")
            return {}
        if payload is None:
            return {}
        sample = json.loads(payload)
        if sample["time"] <= self._seen.get(node, float("-inf")):
            return {}
        self._seen[node] = sample["time"]
        return {schema.system_node(node, tag): float(value) for tag, value in sample["values"].items()}


class NodeReporter:
    """A non-chief node's side: samples this machine every ``interval`` seconds on a daemon
    thread and publishes the figures for the chief (``read``: the machine's figures now)."""

    def __init__(self, interval: float, link: NodeLink, read: Callable[[], Dict[str, float]],
                 info: Callable[[str], None], close: Callable[[], None] = lambda: None) -> None:
        self.interval = interval
        self._link = link
        self._read = read
        self._info = info
        self._close = close
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.samples = 0

    def start(self) -> None:
        self.report()
        self._thread = threading.Thread(target=self._loop, name="unitb-node-figures", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def report(self, last: bool = False) -> None:
        """Read this machine once and publish it (``last``: as training ends, when the chief may
        have gone already: a failure then says nothing)."""
        try:
            self._link.publish(json.dumps({"time": time.time(), "values": self._read()}))
            self.samples += 1
        except Exception as exc:  # the chief's side gone (the job ending), or the machine unreadable
            self._stop.set()
            if not last:
                self._info(f"unitb: node {self._link.node}'s figures stop here ({type(exc).__name__}: {exc})")

    def stop(self) -> None:
        """A last sample, then the thread ends."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._thread = None
        self.report(last=True)
        self._close()
