"""How PyTorch profiles ``profile_steps`` (:class:`unitb.life.profiling.StepProfiler` decides when):
a ``torch.profiler`` trace written into the run folder as
``profile/steps-START-STOP.<host>.<pid>.pt.trace.json`` — Chrome trace format, opened by Perfetto
(ui.perfetto.dev) or chrome://tracing. CPU activity always, CUDA kernels too when CUDA is
available."""
from __future__ import annotations

import os
import socket
from typing import Callable, Optional, Tuple

import torch

from unitb.life.profiling import StepProfiler


def step_profiler(steps: Optional[Tuple[int, int]], folder: str,
                  warn_once: Callable[[str, str, str], None]) -> StepProfiler:
    state = {}

    def begin() -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        profiler = torch.profiler.profile(activities=activities)
        profiler.__enter__()
        state["profiler"] = profiler

    def end(label: str) -> None:
        profiler = state.pop("profiler")
        profiler.__exit__(None, None, None)
        target = os.path.join(folder, "profile")
        os.makedirs(target, exist_ok=True)
        name = f"{label}.{socket.gethostname()}.{os.getpid()}.pt.trace.json"
        profiler.export_chrome_trace(os.path.join(target, name))

    return StepProfiler(steps, begin, end, warn_once)
