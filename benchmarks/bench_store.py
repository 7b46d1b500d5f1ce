"""A URL logdir (s3://) against a local one: what uploading costs the training loop."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List

from bench_common import CLOCK, HERE, Row, fmt, interleaved, met, ratio_stats


def bench_store(quick: bool) -> List[Row]:
    """A URL logdir against a local one, with the same TorchLogger loop: what training waits for
    while a mirror thread uploads every second, and while the store is down (moto's S3 server on
    loopback, killed for that variant)."""
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from s3_store import MotoStore
    from torch_adapter import TorchLogger

    store = MotoStore().start()
    os.environ.update(store.env())
    bucket = store.make_bucket("bench")
    steps = 40 if quick else 1000
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256))
    opt = torch.optim.SGD(model.parameters(), 0.01)
    batch = torch.randn(64, 256)
    closes: List[float] = []
    walls: Dict[str, List[float]] = {}
    counter = [0]

    def loop(logdir: str) -> float:
        counter[0] += 1
        log = TorchLogger(logdir if "://" not in logdir else f"{logdir}/{counter[0]}", model, opt,
                          scalar_interval=1, grad_norm_interval=10, upload_interval=1.0, upload_timeout=30,
                          spool_dir=os.path.join(root, "spool"))
        start, cpu = time.perf_counter(), CLOCK()
        for step in range(1, steps + 1):
            loss = model(batch).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.log_step(step, loss=loss, epoch=step / 100)
            if step % 100 == 0:
                log.log_epoch(step, step // 100)  # weight histograms: the bulk of the bytes
        walls.setdefault(logdir.split("/")[-1].split("-")[0], []).append(time.perf_counter() - start)
        seconds = CLOCK() - cpu  # every thread's CPU, the uploads included
        if "://" in logdir:
            if store.process is None:
                store.start()
                store.make_bucket("bench")
            begun = time.perf_counter()
            log.close()
            closes.append(time.perf_counter() - begun)
        else:
            log.close()
        return seconds

    def outage() -> float:
        store.stop()
        return loop(bucket + "/down")

    with tempfile.TemporaryDirectory() as root:
        times = interleaved({"local": lambda: loop(os.path.join(root, f"local-{counter[0]}")),
                             "s3": lambda: loop(bucket + "/up"), "s3 down": outage}, 1 if quick else 5)
    store.stop()
    up, down = ratio_stats(times, "s3", "local"), ratio_stats(times, "s3 down", "local")
    wall = {"local": walls["local"], "s3": walls["up"], "s3 down": walls["down"]}
    wall_up, wall_down = ratio_stats(wall, "s3", "local"), ratio_stats(wall, "s3 down", "local")
    per_step = statistics.median(wall["local"]) / steps * 1000
    return [
        (f"URL logdir (s3://, uploads every 1 s) vs a local folder: TorchLogger loop of {steps} steps "
         f"({per_step:.1f} ms/step, every scalar every step, histograms every 100), CPU of all threads",
         fmt(*up, True) + f"; wall {fmt(*wall_up, True)}", "≤ +5 %", met(up[0] <= 1.05)),
        ("… with the store down for the whole loop (uploads failing and retried)",
         fmt(*down, True) + f"; wall {fmt(*wall_down, True)}", "≤ +5 %", met(down[0] <= 1.05)),
        ("last upload at close() (store up; after an outage: the backlog)",
         f"median {statistics.median(closes):.2f} s, max {max(closes):.2f} s", "bounded by upload_timeout",
         met(max(closes) <= 31)),
    ]
