"""What sampling the machine (``system/*``) costs: CPU time per sample on the sampler's own
thread, as a share of one core at the default interval, and the training loop's step time with
the sampler at a stressing interval against none."""
from __future__ import annotations

import os
import tempfile
import time
from typing import List

from bench_common import CLOCK, Row, fmt, interleaved, met, ratio_stats

DEFAULT_INTERVAL = 10.0


def bench_system(quick: bool) -> List[Row]:
    import torch

    from torch_adapter import TorchLogger
    from unitb.life.options import LogOptions

    assert LogOptions().system_interval == DEFAULT_INTERVAL
    rows: List[Row] = []
    with tempfile.TemporaryDirectory() as root:
        # 1. One sample's CPU time, on the sampler's thread (psutil's reads and the writes),
        #    over many samples of a real run.
        samples = 20 if quick else 200
        logger = TorchLogger(os.path.join(root, "sampled"), log_speed=False, log_model_stats=False,
                             system_interval=3600)  # the thread waits; the samples below are taken by hand
        logger.log_step(1, loss=1.0)
        sampler = logger.life._sampler
        sampler.cpu_seconds, sampler.samples = 0.0, 0
        for _ in range(samples):
            sampler.sample()
            time.sleep(0.11)  # rates and CPU percentages need time between readings
        per_sample = sampler.cpu_seconds / sampler.samples
        logger.close()
        share = per_sample / DEFAULT_INTERVAL
        rows.append((f"system/*: CPU per sample on the sampler's thread ({samples} samples), as a share of one core "
                     f"at the default system_interval={DEFAULT_INTERVAL:g} s",
                     f"{per_sample * 1e6:.0f} µs a sample = {share * 100:.4f} % of a core", "≤ 0.1 % of a core",
                     met(share <= 0.001)))

        # 2. The training loop with the sampler at 0.05 s (200 times the default rate) against none:
        #    whatever the sampler takes from the training thread (the GIL, the writer) shows here.
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        data = torch.randn(64, 64)
        steps = 60 if quick else 600

        def train(interval: float) -> float:
            folder = tempfile.mkdtemp(dir=root)
            log = TorchLogger(folder, model=model, optimizer=optimizer, log_speed=False, scalar_interval=10,
                              system_interval=interval)
            start = CLOCK()
            for step in range(1, steps + 1):
                loss = model(data).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                log.log_step(step, loss=loss)
            spent = CLOCK() - start
            log.close()
            return spent

        times = interleaved({"off": lambda: train(0), "0.05 s": lambda: train(0.05)}, 2 if quick else 7)
        median, low, high = ratio_stats(times, "0.05 s", "off")
        rows.append((f"system/*: a TorchLogger loop ({steps} steps, process CPU time) with system_interval=0.05 s "
                     "vs off", fmt(median, low, high, as_overhead=True), "reported (the default samples 200× less)",
                     "—"))
    return rows
