"""Runs read side by side: a function over many runs on worker processes, results in order.

Reading a run is CPU work (numpy over its records) with a little waiting for the disk or the
store, and one run does not depend on another, so a folder of runs — a sweep's trials — is
read one run per worker. Results come back in the order of the runs, and only a few runs
are in flight at once (``AHEAD`` a worker), so memory is bounded by those runs, not by the
folder. Workers are forked where the platform forks and this process runs no other thread (the
``unitb`` command: nothing to import again, so even a short command gains); otherwise they start
as fresh interpreters.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from typing import TYPE_CHECKING, Callable, Deque, Iterable, Iterator, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Future

from unitb.files import storage

Item = TypeVar("Item")
Result = TypeVar("Result")

AHEAD = 2  # runs in flight a worker: one being read, one waiting
STORE_WORKERS_A_CORE = 2  # a run in a store waits for the network too: more requests at once (4 a core
# was slower than 2 against a store on the same two cores: each worker starts its own client)
_DONE = object()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


WORKERS_VARIABLE = "UNITB_READ_WORKERS"  # a cap set by the user (a shared login node: 1)


def workers_for(root: str, runs: int, fetched: bool = False) -> int:
    """How many workers read ``runs`` runs below ``root``: a core each on disk (or from the local
    copies of a store's runs, ``fetched``), a few requests a core from a store, never more than
    the runs nor than ``UNITB_READ_WORKERS`` when set."""
    per_core = STORE_WORKERS_A_CORE if storage.is_url(root) and not fetched else 1
    wanted = cores() * per_core
    cap = os.environ.get(WORKERS_VARIABLE, "").strip()
    if cap.isdigit() and int(cap) > 0:
        wanted = min(wanted, int(cap))
    return max(1, min(runs, wanted))


# fsspec's I/O loop and its executor's threads (a store's name lookups): fsspec starts a new loop
# in a forked child and never touches the old one there.
FORK_SAFE_THREADS = ("fsspecIO", "asyncio_")


def _start_method() -> str:
    """Fork where nothing but this thread runs (the ``unitb`` command: nothing to import again);
    a process with other threads (TensorFlow's, a writer's) might fork while one of them holds
    a lock the child then waits on forever, so its workers start as fresh interpreters (with
    this process's environment as it is now: a forkserver would keep the one it started with)."""
    import multiprocessing  # with concurrent.futures, loaded only where runs are read side by side

    methods = multiprocessing.get_all_start_methods()
    others = [thread for thread in threading.enumerate()
              if thread is not threading.main_thread() and not thread.name.startswith(FORK_SAFE_THREADS)]
    if "fork" in methods and not others:
        return "fork"
    return "spawn"


def in_order(work: Callable[[Item], Result], items: Iterable[Item], workers: int) -> Iterator[Result]:
    """``work(item)`` for each item, in the items' order, on ``workers`` processes (in this
    process when one is enough). ``work`` must be a module-level function; ``items`` may be an
    iterator that waits for each item (runs fetched from a store, :mod:`unitb.read.prefetch`),
    asked for its first one only once every worker has started. The workers start,
    and the first items go out, in this call: a caller that starts threads of its own afterwards
    (Arrow's, writing the results) never forks under them."""
    if workers <= 1 or (isinstance(items, list) and len(items) <= 1):
        return map(work, items)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(_start_method()))
    pending: Deque[Future] = deque()
    queue = iter(items)
    try:
        pool.submit(int).result()  # every worker started now, before an item's iterator starts threads
        for item in queue:
            pending.append(pool.submit(work, item))
            if len(pending) >= workers * AHEAD:
                break
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    return _results(work, pool, pending, queue)


def _results(work: Callable[[Item], Result], pool, pending: "Deque[Future]", queue: Iterator[Item]
             ) -> Iterator[Result]:
    """The results of :func:`in_order`, one at a time, the next item handed out as each returns."""
    try:
        while pending:
            result = pending.popleft().result()
            following = next(queue, _DONE)
            if following is not _DONE:
                pending.append(pool.submit(work, following))
            yield result
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
