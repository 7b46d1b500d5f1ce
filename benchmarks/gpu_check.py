"""The CUDA paths of the PyTorch side, checked on a machine with a GPU (no mmengine or
TensorFlow needed: ``PYTHONPATH=. python benchmarks/gpu_check.py OUT``).

1. Values: a mixed-precision (fp16 autocast + GradScaler) TorchLogger run on the GPU writes
   the gradient norm of the gradients the optimizer applies (checked against an independent
   witness inside ``optimizer.step``), the loss scale and the device memory.
2. Host syncs: ``torch.cuda.set_sync_debug_mode("warn")`` counts the synchronising calls made
   in steps where nothing is due (there must be none from unitb) and in due steps.
3. Cost: median step time of a GPU-bound model with and without unitb at defaults (ratio,
   plus an A/A pair of plain runs for the noise).
4. Profiler: ``profile_steps`` writes a trace that holds CUDA kernels.
5. System figures: ``system/gpu/0/*`` of a run that trains on the GPU, beside what ``nvidia-smi``
   reads of the same GPU at the same moment (memory within 5 %, temperature within 3 °C, power
   within 15 %: NVML averages power over its own window).

Prints one JSON report and writes it to ``OUT/gpu_check.json``.
"""
from __future__ import annotations

import glob
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch

import unitb
from unitb import reader

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: a dry run of the script itself


def _model(width: int = 2048 if DEVICE == "cuda" else 128, depth: int = 6) -> torch.nn.Module:
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.GELU()]
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1)).to(DEVICE)


def check_values(folder: str) -> dict:
    torch.manual_seed(0)
    model = _model(256, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(DEVICE)
    witness = {}
    current = {"step": 0}

    def record(opt, args, kwargs):  # the gradients the optimizer applies (unscaled by now)
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        witness[current["step"]] = math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads))
    optimizer.register_step_pre_hook(record)
    logger = unitb.TorchLogger(folder, model=model, optimizer=optimizer, grad_scaler=scaler, grad_norm_interval=5,
                               scalar_interval=5)
    x = torch.randn(64, 256, device=DEVICE)
    for step in range(1, 41):
        current["step"] = step
        with torch.autocast(DEVICE, dtype=torch.float16 if DEVICE == "cuda" else torch.bfloat16):
            loss = model(x).float().pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        logger.log_step(step, loss=loss, batch_size=64, metrics={"acc": (loss < 1).float()})
    logger.log_scalar("own/scalar", torch.tensor(3.0, device=DEVICE))  # the user's own values, on the GPU
    logger.log_histogram("own/histogram", torch.randn(1000, device=DEVICE))
    logger.log_image("own/image", torch.rand(3, 16, 16, device=DEVICE))
    logger.close()
    scalars = reader.scalars(logger.run_dir)
    kinds = {row["tag"]: row["kind"] for row in reader.tag_summary(logger.run_dir)}
    norms = dict(scalars.get("train/gradient_norm/global", []))
    worst = max((abs(norms[s] - witness[s]) / max(witness[s], 1e-12) for s in norms if s in witness), default=None)
    return {
        "grad_norm_steps": sorted(norms),
        "grad_norm_worst_relative_error_vs_witness": worst,
        "loss_scale_points": len(scalars.get("train/loss_scale", [])),
        "memory_tags": sorted(t for t in scalars if t.startswith("train/memory/")),
        "memory_first_values_mb": {t: [round(v, 1) for _, v in p[:3]] for t, p in scalars.items()
                                   if t.startswith("train/memory/")},
        "loss_steps": [st for st, _ in scalars.get("train/loss", [])],
        "acc_steps": [st for st, _ in scalars.get("train/acc", [])],
        "own": {tag: kinds.get(tag) for tag in ("own/scalar", "own/histogram", "own/image")},
        "tags": sorted(scalars),
    }


def _train(steps: int, logger=None, model=None, optimizer=None, sync_counts=None):
    x = torch.randn(512, 2048 if DEVICE == "cuda" else 128, device=DEVICE)
    times = []
    for step in range(1, steps + 1):
        started = time.perf_counter()
        loss = model(x).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if logger is not None:
            if sync_counts is not None:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    if DEVICE == "cuda":
                        torch.cuda.set_sync_debug_mode("warn")
                    logger.log_step(step, loss=loss, batch_size=512)
                    if DEVICE == "cuda":
                        torch.cuda.set_sync_debug_mode("default")
                sync_counts.append((step, len([w for w in caught if "synchroniz" in str(w.message)])))
            else:
                logger.log_step(step, loss=loss, batch_size=512)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times


def check_syncs(folder: str) -> dict:
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    logger = unitb.TorchLogger(folder, model=model, optimizer=optimizer)
    counts = []
    _train(300, logger, model, optimizer, sync_counts=counts)
    logger.close()
    written = {s for tag, points in reader.scalars(logger.run_dir).items() for s, _ in points if tag == "train/loss"}
    quiet = [c for s, c in counts if s not in written]
    due = [c for s, c in counts if s in written]
    return {"steps": len(counts), "due_steps": sorted(written)[:20], "syncs_in_quiet_steps_total": sum(quiet),
            "quiet_steps": len(quiet), "syncs_per_due_step": due[:10]}


def check_cost(folder: str, steps: int = 400 if DEVICE == "cuda" else 40) -> dict:
    results = {}
    for label in ("plain_a", "unitb", "plain_b"):
        torch.manual_seed(0)
        model = _model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        logger = unitb.TorchLogger(os.path.join(folder, label), model=model, optimizer=optimizer) \
            if label == "unitb" else None
        _train(20, logger, model, optimizer)  # warm-up (kernels, allocator); steps 1..20
        if logger is not None:
            logger.close()
            logger = unitb.TorchLogger(os.path.join(folder, label + "-timed"), model=model, optimizer=optimizer)
        times = _train(steps, logger, model, optimizer)
        if logger is not None:
            logger.close()
        results[label] = statistics.median(times) * 1e3
    return {"median_step_ms": results,
            "unitb_over_plain": results["unitb"] / statistics.mean([results["plain_a"], results["plain_b"]]),
            "a_over_b": results["plain_a"] / results["plain_b"]}


def check_profiler(folder: str) -> dict:
    model = _model(depth=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    logger = unitb.TorchLogger(folder, model=model, optimizer=optimizer, profile_steps=(5, 7))
    _train(10, logger, model, optimizer)
    logger.close()
    traces = glob.glob(os.path.join(logger.run_dir, "profile", "*.json"))
    kernels = 0
    for path in traces:
        with open(path) as handle:
            events = json.load(handle).get("traceEvents", [])
        kernels += sum(1 for e in events if str(e.get("cat", "")).lower() == "kernel")
    return {"traces": [os.path.basename(p) for p in traces], "cuda_kernel_events": kernels}


def check_system(folder: str) -> dict:
    import subprocess

    from unitb.life.system_metrics import SystemSampler

    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    logger = unitb.TorchLogger(os.path.join(folder, "run"), model=model, optimizer=optimizer, system_interval=3600)
    data = torch.randn(256, model[0].in_features, device=DEVICE)
    for step in range(1, 21):
        loss = model(data).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logger.log_step(step, loss=loss)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    sampler: SystemSampler = logger.life._sampler
    sampler.sample()  # now, beside nvidia-smi
    smi = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,temperature.gpu,power.draw,utilization.gpu",
                          "--format=csv,noheader,nounits", "-i", str(torch.cuda.current_device() if DEVICE == "cuda"
                                                                    else 0)],
                         capture_output=True, text=True) if DEVICE == "cuda" else None
    logger.close()
    written = {tag: points[-1][1] for tag, points in reader.scalars(logger.run_dir).items()
               if tag.startswith("system/gpu/")}
    report: dict = {"unitb": written}
    if smi is not None and smi.returncode == 0:
        used, temperature, power, utilization = (float(v) for v in smi.stdout.strip().split(", "))
        report["nvidia_smi"] = {"memory_used_mb": used, "temperature_c": temperature, "power_w": power,
                                "utilization_percent": utilization}
        report["agree"] = {
            "memory": abs(written.get("system/gpu/0/memory_used_mb", -1) - used) <= 0.05 * used,  # both MiB
            "temperature": abs(written.get("system/gpu/0/temperature_c", -99) - temperature) <= 3,
            "power": abs(written.get("system/gpu/0/power_w", -1) - power) <= 0.15 * power}
    return report


def main(out: str) -> int:
    os.makedirs(out, exist_ok=True)
    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"}
    with tempfile.TemporaryDirectory() as folder:
        for name, check in (("values", check_values), ("syncs", check_syncs), ("cost", check_cost),
                            ("profiler", check_profiler), ("system", check_system)):
            started = time.perf_counter()
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", unitb.UnitbWarning)
                    report[name] = check(os.path.join(folder, name))
                report[name]["unitb_warnings"] = sorted({str(w.message)[:200] for w in caught
                                                         if issubclass(w.category, unitb.UnitbWarning)})
            except Exception as exc:  # one failing check must not hide the others
                report[name] = {"error": f"{type(exc).__name__}: {exc}"}
            report[name]["seconds"] = round(time.perf_counter() - started, 1)
            print(name, json.dumps(report[name]), flush=True)
    with open(os.path.join(out, "gpu_check.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "gpu-check"))
