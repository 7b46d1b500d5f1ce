"""Start-up: the first Keras fit with and without TFCallback, and a PyTorch run that never loads
TensorFlow."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

from bench_common import HERE, Row, fmt, interleaved, met


def startup_model(optimizer: str, steps_per_execution: int = 1):
    """The Keras start-up rows' model (a small conv net, ~16-20 ms a step here), compiled."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
                              keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=steps_per_execution)
    return model


def step_seconds(model, x, y, steps: int, batch: int, repeats: int = 3) -> float:
    """A training step of ``model``: the slope of a fit's wall time between ``steps`` and 5x as
    many steps (best of ``repeats`` each), so Keras' own per-fit work is not counted as steps."""
    model.fit(x[:steps * batch], y[:steps * batch], batch_size=batch, epochs=1, verbose=0)
    best = {}
    for size in (steps, steps * 5):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.fit(x[:size * batch], y[:size * batch], batch_size=batch, epochs=1, verbose=0)
            times.append(time.perf_counter() - started)
        best[size] = min(times)
    return (best[steps * 5] - best[steps]) / (steps * 4)


WINDOW = 8  # the steps_per_execution of the start-up row that runs several steps a call


def bench_keras_startup(quick: bool) -> List[Row]:
    """What one fit() costs with TFCallback apart from its steps: fits of two lengths on a fresh
    model each time (as a sweep or a notebook does), wall clock, min of N, A/A row included.
    fixed = extra(short) - short x per-step extra, per-step extra = the slope between lengths."""
    import keras
    import numpy as np

    import unitb

    short, long = (4, 24) if quick else (10, 60)
    trials = 1 if quick else 5
    rng = np.random.default_rng(0)
    x = rng.random((long * 16, 64, 64, 3)).astype("float32")
    y = rng.random((long * 16, 10)).astype("float32")

    build = startup_model

    phases: Dict[str, Dict[str, List[float]]] = {}  # optimizer/with or without: phase: seconds per fit

    class PhaseClock(keras.callbacks.Callback):
        """When each phase of a fit ends (placed after TFCallback, so its work counts in)."""

        def __init__(self):
            super().__init__()
            self.marks: Dict[str, float] = {}

        def on_train_begin(self, logs=None):
            self.marks["begin"] = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            self.marks.setdefault("first batch", time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            self.marks.setdefault("first step", time.perf_counter())
            self.marks["last step"] = time.perf_counter()

    def fit(steps: int, callback: bool, optimizer: str = "adam", window: int = 1, **options) -> float:
        model = build(optimizer, window)
        clock = PhaseClock()
        callbacks = [unitb.TFCallback(tempfile.mkdtemp(prefix="unitb-start-"), **options)] if callback else []
        started = time.perf_counter()
        model.fit(x[:steps * 16], y[:steps * 16], batch_size=16, epochs=1, verbose=0, callbacks=callbacks + [clock])
        ended = time.perf_counter()
        if steps == short and not options and window == 1:
            marks = clock.marks
            phase = phases.setdefault(f"{optimizer}/{callback}", {})
            for name, seconds in (("epoch start", marks["first batch"] - marks["begin"]),
                                  ("first step (the trace)", marks["first step"] - marks["first batch"]),
                                  ("the fit's end", ended - marks["last step"])):
                phase.setdefault(name, []).append(seconds)
        return ended - started

    def repeated(callback: bool, fits: int = 4) -> float:
        """``for epoch in range(E): model.fit(..., epochs=1, callbacks=[cb])``: the later fits' time."""
        model = build("adam")
        callbacks = [unitb.TFCallback(tempfile.mkdtemp(prefix="unitb-repeat-"))] if callback else []
        model.fit(x[:short * 16], y[:short * 16], batch_size=16, epochs=1, verbose=0, callbacks=callbacks)
        started = time.perf_counter()
        for _ in range(fits - 1):
            model.fit(x[:short * 16], y[:short * 16], batch_size=16, epochs=1, verbose=0, callbacks=callbacks)
        for cb in callbacks:
            cb.close()
        return (time.perf_counter() - started) / (fits - 1)

    variants = {f"{name}-{n}": (lambda n=n, cb=cb, opt=opt: fit(n, cb, opt))
                for n in (short, long) for name, cb, opt in (("none", False, "adam"), ("again", False, "adam"),
                                                             ("unitb", True, "adam"), ("none-sgd", False, "sgd"),
                                                             ("again-sgd", False, "sgd"), ("unitb-sgd", True, "sgd"))}
    for n in (short, long):  # steps_per_execution: the unitb ops run inside Keras' while loop
        variants[f"none-spe-{n}"] = lambda n=n: fit(n, False, "sgd", window=WINDOW)
        variants[f"unitb-spe-{n}"] = lambda n=n: fit(n, True, "sgd", window=WINDOW)
    variants[f"graph-{short}"] = lambda: fit(short, True, log_graph=True)
    variants[f"profile-{short}"] = lambda: fit(short, True, profile_steps=(2, 3))
    variants["repeat-none"] = lambda: repeated(False)
    variants["repeat-unitb"] = lambda: repeated(True)
    times = interleaved(variants, trials)
    best = {k: min(v) for k, v in times.items()}

    def start_up(with_unitb: str, without: str) -> Tuple[float, float, float]:
        step = (best[f"{without}-{long}"] - best[f"{without}-{short}"]) / (long - short)
        per_step = ((best[f"{with_unitb}-{long}"] - best[f"{without}-{long}"])
                    - (best[f"{with_unitb}-{short}"] - best[f"{without}-{short}"])) / (long - short)
        fixed = (best[f"{with_unitb}-{short}"] - best[f"{without}-{short}"]) - short * per_step
        return fixed, step, per_step

    def paired(with_unitb: str, without: str) -> float:
        """The same estimate made within each trial (its four fits ran minutes closer together
        than the fastest of each across trials), median over the trials."""
        def extra(n: int, t: int) -> float:
            return times[f"{with_unitb}-{n}"][t] - times[f"{without}-{n}"][t]
        return statistics.median(extra(short, t) - short * (extra(long, t) - extra(short, t)) / (long - short)
                                 for t in range(trials))

    fixed, step, per_step = start_up("unitb", "none")
    sgd_fixed, sgd_step, _ = start_up("unitb-sgd", "none-sgd")
    spe_fixed, spe_step, _ = start_up("unitb-spe", "none-spe")
    aa = best[f"again-{short}"] - best[f"none-{short}"]
    sgd_aa = best[f"again-sgd-{short}"] - best[f"none-sgd-{short}"]

    def phase_delta(name: str) -> float:
        return min(phases["sgd/True"][name]) - min(phases["sgd/False"][name])

    phase_names = list(phases["sgd/True"])
    graph = best[f"graph-{short}"] - best[f"unitb-{short}"]
    profile = best[f"profile-{short}"] - best[f"unitb-{short}"]
    again = best["repeat-unitb"] - best["repeat-none"]
    return [
        (f"Keras fit() start-up cost of TFCallback, Adam (fresh model each fit, fits of {short} and {long} steps, "
         f"min of {trials}, wall clock)",
         f"{fixed * 1000:+.0f} ms = {fixed / step:.1f} steps of {step * 1000:.1f} ms (A/A {aa * 1000:+.0f} ms)",
         "≤ 5 steps", met(fixed <= 5 * step)),
        ("… the same with SGD (Keras traces its step once either way)",
         f"{sgd_fixed * 1000:+.0f} ms = {sgd_fixed / sgd_step:.1f} steps of {sgd_step * 1000:.1f} ms "
         f"(A/A {sgd_aa * 1000:+.0f} ms; paired within each trial, median: "
         f"{paired('unitb-sgd', 'none-sgd') / sgd_step:.1f} steps)", "≤ 5 steps", met(sgd_fixed <= 5 * sgd_step)),
        (f"… the same with SGD and steps_per_execution={WINDOW}",
         f"{spe_fixed * 1000:+.0f} ms = {spe_fixed / spe_step:.1f} steps of {spe_step * 1000:.1f} ms "
         f"(paired, median: {paired('unitb-spe', 'none-spe') / spe_step:.1f} steps)",
         "≤ 5 steps", met(spe_fixed <= 5 * spe_step)),
        (f"… SGD, the {short}-step fit timed per phase by a callback after TFCallback (fastest of {trials}): "
         "what TFCallback adds to " + ", ".join(phase_names),
         " / ".join(f"{phase_delta(name) * 1000:+.0f} ms" for name in phase_names)
         + f" = {sum(phase_delta(n) for n in phase_names) / sgd_step:.1f} steps", "≤ 5 steps",
         met(sum(phase_delta(n) for n in phase_names) <= 5 * sgd_step)),
        ("Keras fit(): per-step cost of TFCallback at defaults (slope between the two lengths)",
         f"{per_step * 1000:+.2f} ms a step", "(reported)", "—"),
        (f"… what log_graph=True adds to a fit's start-up / profile_steps=(2, 3) adds to a {short}-step fit",
         f"{graph * 1000:+.0f} ms / {profile * 1000:+.0f} ms", "(reported)", "—"),
        ("… a later fit() of the same model with the same callback (for epoch in range(E): model.fit(epochs=1))",
         f"{again * 1000:+.0f} ms a fit ({best['repeat-unitb'] * 1000:.0f} vs {best['repeat-none'] * 1000:.0f} ms)",
         "stays small", met(again <= 5 * step)),
    ] + first_fit_in_a_new_process(quick, short, sgd_step)


FIRST_FIT = """
import os, sys, tempfile, time
sys.path.insert(0, sys.argv[3])
import numpy as np
import keras
import unitb
from bench_startup import startup_model
steps = int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.random((steps * 16, 64, 64, 3)).astype("float32")
y = rng.random((steps * 16, 10)).astype("float32")
model = startup_model("sgd")
callbacks = [unitb.TFCallback(tempfile.mkdtemp(prefix="unitb-first-"))] if sys.argv[1] == "unitb" else []
started = time.perf_counter()
model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)
print(time.perf_counter() - started)
"""


def first_fit_in_a_new_process(quick: bool, steps: int, step_seconds: float) -> List[Row]:
    """The first fit() of a process (a sweep's trial in a process of its own, a script run once):
    nothing of unitb's is traced yet. Each fit in a fresh interpreter, with and without
    TFCallback in turn; the interpreter's imports are not counted, the fit's own time is."""
    trials = 1 if quick else 5
    times: Dict[str, List[float]] = {"none": [], "unitb": []}
    for trial in range(trials):
        for variant in (("none", "unitb") if trial % 2 == 0 else ("unitb", "none")):
            out = subprocess.run([sys.executable, "-c", FIRST_FIT, variant, str(steps), HERE],
                                 capture_output=True, text=True, check=True,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            times[variant].append(float(out.stdout.strip().splitlines()[-1]))
    extra = min(times["unitb"]) - min(times["none"])
    return [(f"… SGD, the first fit() in a new process ({steps} steps, fastest of {trials} processes each; "
             "the figures above are of later models in one process, which reuse unitb's traced measuring branch)",
             f"{extra * 1000:+.0f} ms = {extra / step_seconds:.1f} steps "
             f"({min(times['unitb']) * 1000:.0f} vs {min(times['none']) * 1000:.0f} ms, per-step cost included)",
             "≤ 5 steps", met(extra <= 5 * step_seconds))]


TORCH_RUN = """
import sys, time, resource
start = time.perf_counter()
if sys.argv[1] == "hidden":
    sys.modules["tensorflow"] = None  # as if TensorFlow were not installed
elif sys.argv[1] == "loaded":
    import tensorflow  # what every PyTorch run paid before: tensorboard's file I/O imported it
import torch
if sys.argv[2] == "mmengine":
    sys.path.insert(0, sys.argv[4])
    import mmengine_pose
    mmengine_pose.build_runner(sys.argv[3], steps=20, checkpoints=False).train()
else:
    from torch_adapter import TorchLogger
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    log = TorchLogger(sys.argv[3], model, opt, scalar_interval=1, grad_norm_interval=1)
    for step in range(1, 21):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        log.log_step(step, loss=loss)
    log.close()
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tensorflow" in sys.modules
      and sys.modules["tensorflow"] is not None)
"""


def bench_torch_start(quick: bool) -> List[Row]:
    """A PyTorch run with TensorFlow installed vs the same run with TensorFlow hidden, whole
    processes side by side (wall time to the end of the run, peak RSS)."""
    trials = 1 if quick else 5
    rows: List[Row] = []
    examples = os.path.join(os.path.dirname(HERE), "examples")
    kinds = (("logger", "TorchLogger, 20 steps"), ("mmengine", "mmengine Runner + hook + TensorboardVisBackend, 20 steps"))
    for kind, label in kinds[:1] if quick else kinds:  # the smoke run: one kind shows the script works
        results: Dict[str, List[Tuple[float, float, bool]]] = {"default": [], "hidden": [], "loaded": []}
        for trial in range(trials):
            order = list(results)[trial % 3:] + list(results)[:trial % 3]
            for variant in order:
                with tempfile.TemporaryDirectory() as root:
                    out = subprocess.run([sys.executable, "-c", TORCH_RUN, variant, kind, root, examples],
                                         capture_output=True, text=True, check=True,
                                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
                seconds, rss, tf_loaded = out.stdout.strip().splitlines()[-1].split()
                results[variant].append((float(seconds), float(rss), tf_loaded == "True"))
        for name, index, unit in (("time to the end of the run", 0, "s"), ("peak RSS", 1, "MB")):
            ratios = [d[index] / h[index] for d, h in zip(results["default"], results["hidden"])]
            before = [b[index] / h[index] for b, h in zip(results["loaded"], results["hidden"])]
            median = statistics.median(ratios)
            rows.append((f"{label}, {name}: TensorFlow installed vs hidden (TensorFlow loaded: "
                         f"{any(r[2] for r in results['default'])})",
                         fmt(median, min(ratios), max(ratios), as_overhead=True)
                         + f"; {statistics.median(r[index] for r in results['default']):.1f} {unit}",
                         "≤ +5 %", met(median <= 1.05)))
            rows.append((f"{label}, {name}: as before, TensorFlow loaded by tensorboard's file I/O, vs hidden",
                         fmt(statistics.median(before), min(before), max(before), as_overhead=True)
                         + f"; {statistics.median(r[index] for r in results['loaded']):.1f} {unit}",
                         "(reference)", "—"))
    return rows
