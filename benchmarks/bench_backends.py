"""W&B and MLflow beside TensorBoard: what forwarding costs the training loop."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List

from bench_common import HERE, Row, fmt, interleaved, met, ratio_stats


def bench_backends(quick: bool) -> List[Row]:
    """What W&B (offline) and MLflow (a tracking server on loopback) cost the training thread
    through unitb's forwarder, against TensorBoard alone, and against the loop calling
    ``wandb.log`` / ``MlflowClient.log_metric`` itself; every scalar every step, so the
    backends have the most to do. Wall time of the loop (what training waits for)."""
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    import wandb
    from backend_stores import MlflowServer
    from torch_adapter import TorchLogger

    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
    steps = 40 if quick else 1000
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256))
    opt = torch.optim.SGD(model.parameters(), 0.01)
    batch = torch.randn(64, 256)
    closes: Dict[str, List[float]] = {}
    medians: Dict[str, List[float]] = {}
    counter = [0]

    def label_of(backends, direct) -> str:
        return "+".join(["tb", *sorted(backends or ()), *(["own " + direct.__name__] if direct else [])])

    def loop(root: str, backends=None, direct=None) -> float:
        counter[0] += 1
        log = TorchLogger(os.path.join(root, f"run-{counter[0]}"), model, opt, scalar_interval=1, grad_norm_interval=10,
                          backends=backends)
        start = time.perf_counter()
        ticks = [start]
        for step in range(1, steps + 1):
            loss = model(batch).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            log.log_step(step, loss=loss, epoch=step / 100)
            if direct is not None:
                direct(step, float(loss))
            ticks.append(time.perf_counter())
        seconds = ticks[-1] - start
        medians.setdefault(label_of(backends, direct), []).append(
            statistics.median(b - a for a, b in zip(ticks, ticks[1:])))
        begun = time.perf_counter()
        log.close()
        closes.setdefault("wandb" if backends and "wandb" in backends else "mlflow" if backends else "tb",
                          []).append(time.perf_counter() - begun)
        return seconds

    with tempfile.TemporaryDirectory() as root:
        server = MlflowServer(root).start()
        client = server.client()
        experiment = client.create_experiment("bench")
        wandb_dir = os.path.join(root, "wandb-files")
        os.makedirs(wandb_dir)

        def direct_wandb() -> float:
            run = wandb.init(project="bench", dir=wandb_dir, reinit="create_new",
                             settings=wandb.Settings(console="off", silent=True))
            try:
                def wandb_log(step, loss):
                    run.log({"train/loss": loss}, step=step)
                return loop(root, direct=wandb_log)
            finally:
                run.finish()

        def direct_mlflow() -> float:
            run_id = client.create_run(experiment).info.run_id
            try:
                def mlflow_log(step, loss):
                    client.log_metric(run_id, "train/loss", loss, step=step)
                return loop(root, direct=mlflow_log)
            finally:
                client.set_terminated(run_id)

        loop(root)  # warm-up: the first loop of a process pays for allocations and lazy imports
        times = interleaved({
            "tb": lambda: loop(root),
            "tb+wandb": lambda: loop(root, {"wandb": {"dir": wandb_dir, "project": "bench"}}),
            "tb+mlflow": lambda: loop(root, {"mlflow": {"tracking_uri": server.uri, "experiment": "bench"}}),
            "tb+own wandb.log": direct_wandb,
            "tb+own mlflow": direct_mlflow,
        }, 1 if quick else 5)
        server.stop()
    per_step = statistics.median(times["tb"]) / steps * 1000
    steps_of = {"tb": medians["tb"], "tb+wandb": medians["tb+wandb"], "tb+mlflow": medians["tb+mlflow"],
                "tb+own wandb.log": medians["tb+own wandb_log"], "tb+own mlflow": medians["tb+own mlflow_log"]}
    rows: List[Row] = []
    for name, label in (("tb+wandb", "backends=('wandb',) (offline)"), ("tb+mlflow", "backends=('mlflow',) (server on loopback)")):
        median_step = ratio_stats(steps_of, name, "tb")
        rows.append((f"{label} vs TensorBoard alone: TorchLogger loop of {steps} steps ({per_step:.1f} ms/step), "
                     f"every scalar every step: median step time; the loop's wall time",
                     fmt(*median_step, True) + f"; wall {fmt(*ratio_stats(times, name, 'tb'), True)}",
                     "≤ +5 %", met(median_step[0] <= 1.05)))
    for name, label in (("tb+own wandb.log", "the loop calling run.log({'train/loss': …}, step=) itself every step"),
                        ("tb+own mlflow", "the loop calling MlflowClient.log_metric(…, step=) itself every step")):
        rows.append((f"… for comparison: {label} (TensorBoard through unitb as well)",
                     fmt(*ratio_stats(steps_of, name, "tb"), True)
                     + f"; wall {fmt(*ratio_stats(times, name, 'tb'), True)}", "(reference)", "—"))
    for name in ("wandb", "mlflow"):
        rows.append((f"close() with {name}: the rest sent and the backend run finished",
                     f"median {statistics.median(closes[name]):.2f} s, max {max(closes[name]):.2f} s",
                     "bounded by backend_timeout (30 s)", met(max(closes[name]) <= 31)))
    return rows
