"""What sampling the machine (``system/*``) costs: CPU time per sample on the sampler's own
thread, as a share of one core at the default interval, beside MLflow's and W&B's own system
samplers doing the same work, and the training loop's step time with the sampler at a stressing
interval against none."""
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
        for name, measure in (("MLflow's SystemMetricsMonitor (its thread's work: collect, aggregate, check the run, "
                               "log to a local store)", lambda: _mlflow_per_sample(root, samples)),
                              ("W&B's system monitor (in its wandb-core service process, offline; CPU of that "
                               "process with stats on minus off)", lambda: _wandb_per_sample(root, quick))):
            if quick:  # each starts its own store or service: seconds the smoke test does not need
                rows.append((f"system/*: {name}", "not run in --quick", "reported", "—"))
                continue
            try:
                theirs = measure()
            except Exception as exc:  # not installed, or refused to start here
                rows.append((f"system/*: {name}", f"not measured ({type(exc).__name__}: {exc})", "reported", "—"))
                continue
            rows.append((f"system/*: {name}, per sample, beside unitb's",
                         f"{theirs * 1e6:.0f} µs a sample = {theirs / DEFAULT_INTERVAL * 100:.4f} % of a core at "
                         f"{DEFAULT_INTERVAL:g} s; unitb's is {per_sample / theirs:.2f}× of it", "reported", "—"))

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


def _mlflow_per_sample(root: str, samples: int) -> float:
    """CPU seconds MLflow's monitor thread spends a sample, doing by hand what its loop does."""
    import mlflow
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from mlflow.tracking import MlflowClient

    uri = "sqlite:///" + os.path.join(root, "mlflow.db")
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("system"))
    monitor = SystemMetricsMonitor(run.info.run_id, tracking_uri=uri)
    spent = 0.0
    for _ in range(samples):
        started = time.thread_time()
        monitor.collect_metrics()
        MlflowClient(uri).get_run(run.info.run_id)  # its loop checks the run is still running
        monitor.publish_metrics(monitor.aggregate_metrics())
        spent += time.thread_time() - started
        time.sleep(0.11)
    started = time.thread_time()
    monitor.mlflow_logger.flush()
    spent += time.thread_time() - started
    del mlflow
    return spent / samples


def _wandb_per_sample(root: str, quick: bool) -> float:
    """CPU seconds W&B's service process spends a sample: the process's CPU over a quiet window
    with stats every 0.1 s, less the same window with stats off, over the samples taken."""
    import psutil
    import wandb

    interval, seconds = 0.1, 2.0 if quick else 8.0

    def service_cpu(stats: bool) -> float:
        run = wandb.init(mode="offline", dir=tempfile.mkdtemp(dir=root), project="unitb-bench",
                         settings=wandb.Settings(x_stats_sampling_interval=interval, x_disable_stats=not stats,
                                                 console="off", silent=True))
        time.sleep(1.0)  # past the service's start

        def cpu() -> float:
            return sum(sum(child.cpu_times()[:2]) for child in psutil.Process().children(recursive=True))

        before = cpu()
        time.sleep(seconds)
        spent = cpu() - before
        run.finish()
        return spent

    off, on = service_cpu(False), service_cpu(True)
    return max(0.0, on - off) / (seconds / interval)
