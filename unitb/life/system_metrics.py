"""What the machine did while the run trained: CPU, memory, disk, network and GPUs, on the
run's own step axis, sampled by a thread of its own so the training thread does nothing.

Every ``system_interval`` seconds (default 10; 0 turns it off) the sampler reads the host
through psutil and this process's GPUs through NVML (:mod:`unitb.life.gpu_metrics`) and writes
``system/*`` (:data:`unitb.schema.FAMILIES`) at the step training stands at, so the figures
overlay with ``train/*``; the event's wall time is the moment of the sample. It also samples
once as a fresh run opens and once more as training ends, so a run shorter than the interval
still has its figures. One point a step: a step longer than the interval (a first step that
compiles, a hang — the alert rules watch those) is sampled once, as W&B and MLflow, which keep one
value a step, get exactly what the event files hold. CPU
percentages and rates (disk, network) are over the time since the previous sample, so the
sample as the run opens has memory figures only.
Whatever fails (psutil missing, a counter a container hides, NVML) is one line, never training's
problem. Only the process that writes the run samples (the chief); in a run over several
machines each other node's first process samples its own machine and hands the figures to the
chief, who writes every node's under its own name (:mod:`unitb.life.node_figures`).
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

from unitb import schema
from unitb.life.gpu_metrics import GpuReader
from unitb.life.policy import check_non_negative

if TYPE_CHECKING:
    from unitb.life.node_figures import NodeFigures

MB = 2 ** 20
MIN_SECONDS = 0.1  # CPU percentages and rates need this long between two readings


def check_system_interval(value: object) -> float:
    """Seconds between samples: a non-negative number (0: off)."""
    return check_non_negative("system_interval", value, "a non-negative number of seconds (0: off)")


class HostReader:
    """The host's and this process's figures from psutil; disk and network as rates."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        psutil.cpu_percent(None)  # the first call only starts psutil's clock
        self._process.cpu_percent(None)
        self._last: Tuple[float, Optional[Tuple[float, float]], Optional[Tuple[float, float]]] = (
            time.monotonic(), self._disk(), self._network())

    @staticmethod
    def _pair(read: Callable[[], Any], first: str, second: str) -> Optional[Tuple[float, float]]:
        """Two byte counters of a psutil reading; None where the machine hides them (a container)."""
        try:
            counters = read()
        except Exception:
            return None
        return None if counters is None else (float(getattr(counters, first)), float(getattr(counters, second)))

    def _disk(self) -> Optional[Tuple[float, float]]:
        return self._pair(self._psutil.disk_io_counters, "read_bytes", "write_bytes")

    def _network(self) -> Optional[Tuple[float, float]]:
        return self._pair(self._psutil.net_io_counters, "bytes_sent", "bytes_recv")

    def read(self) -> Dict[str, float]:
        psutil = self._psutil
        values = {
            schema.SYSTEM_CPU_HOST: float(psutil.cpu_percent(None)),
            schema.SYSTEM_CPU_PROCESS: float(self._process.cpu_percent(None)),
            schema.SYSTEM_MEMORY_HOST: psutil.virtual_memory().used / MB,
            schema.SYSTEM_MEMORY_PROCESS: self._process.memory_info().rss / MB,
        }
        now, disk, network = time.monotonic(), self._disk(), self._network()
        before, disk_before, network_before = self._last
        seconds = now - before
        if seconds < MIN_SECONDS:  # the sample as the run opens: no time yet to measure a rate over
            del values[schema.SYSTEM_CPU_HOST], values[schema.SYSTEM_CPU_PROCESS]
            return values
        if seconds > 0:
            for pair, earlier, tags in ((disk, disk_before, (schema.SYSTEM_DISK_READ, schema.SYSTEM_DISK_WRITE)),
                                        (network, network_before,
                                         (schema.SYSTEM_NETWORK_SENT, schema.SYSTEM_NETWORK_RECEIVED))):
                if pair is not None and earlier is not None:
                    for tag, later, first in zip(tags, pair, earlier):
                        values[tag] = max(0.0, later - first) / MB / seconds
        self._last = (now, disk, network)
        return values


class MachineReader:
    """The host (psutil) and this process's GPUs (NVML), read together: ``system/*`` values."""

    def __init__(self, info: Callable[[str], None], warn: Callable[[str], None]) -> None:
        try:
            self._host: Optional[HostReader] = HostReader()
        except Exception as exc:  # psutil missing or refused: the GPUs may still be read
            self._host = None
            info(f"unitb: no host figures in system/* (psutil: {type(exc).__name__}: {exc})")
        self._gpus = GpuReader(info, warn)

    def read(self) -> Dict[str, float]:
        values: Dict[str, float] = {}
        if self._host is not None:
            values.update(self._host.read())
        values.update(self._gpus.read())
        return values

    def close(self) -> None:
        self._gpus.close()


class SystemSampler:
    """Samples the machine every ``interval`` seconds on a daemon thread and writes the figures
    into ``target()``'s run at its step (``target``: the open run, or None, and the current step);
    ``nodes``: the other machines' figures of a run over several, written beside this one's."""

    def __init__(self, interval: float, target: Callable[[], Tuple[Optional[object], int]],
                 info: Callable[[str], None], warn: Callable[[str], None],
                 on_values: Optional[Callable[[Dict[str, float], int], None]] = None,
                 nodes: Optional[NodeFigures] = None) -> None:
        self.interval = interval
        self._on_values = on_values  # told each sample's figures (the alert rules watch the GPUs' memory)
        self._target = target
        self._warn = warn
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one sample at a time: the thread's, or the last one at the end
        self._thread: Optional[threading.Thread] = None
        self.cpu_seconds = 0.0  # this sampler's own CPU time (benchmarks/ reads it)
        self.samples = 0
        self.last_step: Optional[int] = None
        self._failed = False
        self._info = info
        self._machine: Optional[MachineReader] = None  # made by the first sample, on the thread
        self._nodes = nodes  # the other nodes' figures, in a run over several machines

    def start(self, at_step: int = 0) -> None:
        """Sample at once when the run starts at step 0, then every ``interval`` seconds once the
        step moved. A run that continues (a resume, a Keras fit after another) has its figures at
        ``at_step`` already, or lost them with the process that crashed: one point a step, as
        W&B and MLflow keep one value a step and must match the event files. The first sample
        (and opening NVML) is the thread's, so training does not wait for it."""
        opening = at_step == 0
        if not opening:
            self.last_step = at_step
        self._thread = threading.Thread(target=self._loop, args=(opening,), name="unitb-system-metrics", daemon=True)
        self._thread.start()

    def _loop(self, opening: bool) -> None:
        if opening:
            self.sample(at_step=0)
        while not self._stop.wait(self.interval):
            if self._target()[1] != self.last_step:
                self.sample()

    def sample(self, at_step: Optional[int] = None) -> None:
        """Read the machine once and write what was read at ``at_step`` (else the current step)."""
        with self._lock:
            if self._failed:
                return
            started = time.thread_time()
            try:
                run, step = self._target()
                if run is None:
                    return
                if at_step is not None:
                    step = at_step
                if self._machine is None:
                    self._machine = MachineReader(self._info, self._warn)
                values = self._machine.read()
                if self._nodes is not None:
                    values = self._nodes.named(values)
                for tag, value in values.items():
                    run.scalar(tag, value, step)  # type: ignore[attr-defined]
                if self._on_values is not None:
                    self._on_values(values, step)
                self.samples += 1
                self.last_step = step
            except Exception as exc:  # never into training: the sampler stops, the run goes on
                self._warn(f"unitb: sampling the machine failed ({type(exc).__name__}: {exc}); system/* stops here")
                self._failed = True
                self._stop.set()
            finally:
                self.cpu_seconds += time.thread_time() - started

    def stop(self, last_sample: bool = True) -> None:
        """Stop the thread; ``last_sample``: one more sample at the step training ended at."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._thread = None
        if last_sample and self._target()[1] != self.last_step:  # one point a step
            self.sample()
        with self._lock:
            if self._machine is not None:
                self._machine.close()
