"""The GPUs this process uses, read through NVIDIA's own NVML binding (``nvidia-ml-py``).

Which GPUs: those NVML lists this process as running on; before the process has touched a GPU,
the ones it will (``CUDA_VISIBLE_DEVICES``, narrowed to the local rank's device when
``LOCAL_RANK`` is set). A GPU is named by its CUDA ordinal in this process (``cuda:0`` is
``system/gpu/0/…`` whatever its physical index), so the tags of a run mean the devices its code
names. A machine without the library or a GPU has no GPU figures and one info line; an NVML
error mid-run is one warning, and the GPU figures stop while the host's go on.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from unitb import schema

MB = 2 ** 20
_SAID: set = set()  # what this process said already: a Keras fit opens a run per fit


def _say_once(info: Callable[[str], None], message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        info(message)


def _visible() -> Optional[List[str]]:
    """``CUDA_VISIBLE_DEVICES`` as a list of indices or UUIDs (None: unset, every GPU)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class GpuReader:
    """Reads utilisation, memory, power and temperature of this process's GPUs."""

    def __init__(self, info: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self._warn = warn
        self._nvml: Any = None
        self._devices: List[Tuple[int, Any]] = []  # (CUDA ordinal, NVML handle) of every visible GPU
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._devices = self._visible_devices()
        except Exception as exc:  # no library, no driver, no GPU: the host's figures only
            self._nvml = None
            _say_once(info, f"unitb: system/* holds the host's figures only: no NVIDIA GPU found ({exc})")
            return
        if not self._devices:
            _say_once(info, "unitb: system/* holds the host's figures only: no GPU is visible to this process")

    @property
    def available(self) -> bool:
        return self._nvml is not None and bool(self._devices)

    def _visible_devices(self) -> List[Tuple[int, Any]]:
        nvml = self._nvml
        count = nvml.nvmlDeviceGetCount()
        handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        visible = _visible()
        if visible is None:
            return list(enumerate(handles))
        chosen = []
        for ordinal, name in enumerate(visible):
            if name.isdigit() and int(name) < count:
                chosen.append((ordinal, handles[int(name)]))
            else:  # a UUID (or its prefix, as CUDA takes it)
                for handle in handles:
                    uuid = nvml.nvmlDeviceGetUUID(handle)
                    uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
                    if uuid.startswith(name):
                        chosen.append((ordinal, handle))
                        break
        return chosen

    def _used_by_this_process(self) -> List[Tuple[int, Any]]:
        """The GPUs NVML lists this process on; before any: the local rank's, or every visible one."""
        nvml, pid = self._nvml, os.getpid()
        used = []
        for ordinal, handle in self._devices:
            try:
                processes = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:
                processes = []
            if any(getattr(p, "pid", None) == pid for p in processes):
                used.append((ordinal, handle))
        if used:
            return used
        local_rank = os.environ.get("LOCAL_RANK")
        if local_rank is not None and local_rank.isdigit():
            return [device for device in self._devices if device[0] == int(local_rank)]
        return list(self._devices)

    def read(self) -> Dict[str, float]:
        """``{tag: value}`` of each GPU this process uses; {} once NVML failed."""
        if not self.available:
            return {}
        nvml = self._nvml
        values: Dict[str, float] = {}
        try:
            for ordinal, handle in self._used_by_this_process():
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                values[schema.system_gpu(ordinal, "utilization_percent")] = float(
                    nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                values[schema.system_gpu(ordinal, "memory_used_mb")] = memory.used / MB
                values[schema.system_gpu(ordinal, "memory_total_mb")] = memory.total / MB
                values[schema.system_gpu(ordinal, "power_w")] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
                values[schema.system_gpu(ordinal, "temperature_c")] = float(
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        except Exception as exc:  # a GPU that went away, a driver that failed: the host's figures go on
            self._warn(f"unitb: reading the GPUs failed ({type(exc).__name__}: {exc}); system/gpu/* stops here, "
                       "the host's figures go on")
            self._nvml = None
            return {}
        return values

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = None
