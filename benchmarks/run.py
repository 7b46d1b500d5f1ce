"""unitb benchmarks: ratios measured side by side in one process, interleaved trials.

    python benchmarks/run.py            # full run (a few minutes on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # smoke run (what CI executes; times are not asserted)

Each comparison runs its variants in turn, trial after trial, in a rotating order (A B C,
B C A, C A B, ...), so machine noise and position effects hit all of them alike; the figure is the median over trials, with the spread
(min-max of the per-trial ratios) beside it.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from typing import Callable, Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

Row = Tuple[str, str, str, str]  # benchmark, figure, target, met?

# Training-loop comparisons use the process's CPU time (all threads, the writer thread
# included): on a shared 2-core VM, wall time swings by ±15 % between identical runs
# (see the A/A rows), CPU time by much less, and it still counts every cycle logging costs.
CLOCK = time.process_time


def interleaved(variants: Dict[str, Callable[[], float]], trials: int) -> Dict[str, List[float]]:
    """Run every variant once per trial; each returns its own measured seconds.

    The order rotates from trial to trial (A B C, B C A, C A B, ...) and the garbage of the
    previous variant is collected first, so no variant always runs in the same position
    (after the same neighbour, with the same heap) — a fixed order showed up as a bias of
    several per cent in the A/A rows."""
    import gc

    out: Dict[str, List[float]] = {name: [] for name in variants}
    names = list(variants)
    for trial in range(trials):
        shift = trial % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            out[name].append(variants[name]())
    return out


class SelfTime:
    """Wall time spent inside chosen methods of an object (unitb's own work on the training
    thread): a direct measure that does not drown in run-to-run noise."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, obj, *names: str) -> None:
        for name in names:
            method = getattr(obj, name)

            def timed(*args, _method=method, **kwargs):
                start = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    self.seconds += time.perf_counter() - start
            setattr(obj, name, timed)


def self_time_row(label: str, fractions: List[float], limit: float) -> Row:
    median = statistics.median(fractions)
    return (label, f"{median * 100:.2f} % (trials {min(fractions) * 100:.2f} … {max(fractions) * 100:.2f} %)",
            f"≤ {limit * 100:g} %", _met(median <= limit))


def ratio_stats(times: Dict[str, List[float]], name: str, base: str) -> Tuple[float, float, float]:
    ratios = [a / b for a, b in zip(times[name], times[base])]
    return statistics.median(ratios), min(ratios), max(ratios)


def fmt(median: float, low: float, high: float, as_overhead: bool = False) -> str:
    if as_overhead:
        return f"{(median - 1) * 100:+.1f} % (trials {(low - 1) * 100:+.1f} … {(high - 1) * 100:+.1f} %)"
    return f"{median:.2f}× (trials {low:.2f} … {high:.2f}×)"


# ----------------------------------------------------------------------------- 1 mmengine
def bench_mmengine(quick: bool) -> List[Row]:
    import logging

    from mmengine.hooks import Hook

    import mmengine_pose

    iters = 24 if quick else 400
    trials = 1 if quick else 9
    WARMUP = 4 if quick else 10

    class Clock(Hook):
        priority = "VERY_HIGHEST" if hasattr(Hook, "VERY_HIGHEST") else "HIGHEST"

        def before_train(self, runner):
            self.start = None
            # Open the TensorBoard writer now (it imports TensorFlow): not part of any step.
            runner.visualizer.get_backend("TensorboardVisBackend").experiment

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == WARMUP:  # skip warm-up iterations
                self.start = CLOCK()
                self.marks = [self.start]
            elif runner.iter > WARMUP:
                self.marks.append(CLOCK())

        def after_train(self, runner):
            self.marks.append(CLOCK())
            self.seconds = (self.marks[-1] - self.start) / (runner.iter - WARMUP)
            self.median = statistics.median(b - a for a, b in zip(self.marks, self.marks[1:]))

    self_times: List[float] = []
    medians: Dict[str, List[float]] = {}  # per variant: the median step of each trial

    def variant(key, hook_cfg):
        def run() -> float:
            from torch_adapter.measure import GradNormProbe

            with tempfile.TemporaryDirectory() as work:
                # One pass over the data: mmengine sleeps 2 s whenever an iter-based loop restarts
                # its dataloader, which would swamp the per-step figures.
                runner = mmengine_pose.build_runner(work, steps=iters, by_epoch=False, val_interval=10 ** 6,
                                                    hook=hook_cfg, checkpoints=False, dataset_size=8 * (iters + 2))
                if hook_cfg is None:
                    runner._hooks = [h for h in runner.hooks if type(h).__name__ != "EnhancedTensorBoardHook"]
                clock = Clock()
                runner.register_hook(clock, priority="HIGHEST")
                logging.getLogger().setLevel(logging.ERROR)
                own = SelfTime()
                hook = next((h for h in runner.hooks if type(h).__name__ == "EnhancedTensorBoardHook"), None)
                original = GradNormProbe._pre_step
                if hook is not None and hook_cfg is defaults:
                    own.wrap(hook, "before_train_iter", "after_train_iter", "after_train_epoch", "after_val_iter",
                             "after_val_epoch")
                    GradNormProbe._pre_step = lambda *a, **k: _timed_call(own, original, *a, **k)
                started = time.perf_counter()
                try:
                    runner.train()
                finally:
                    GradNormProbe._pre_step = original
                if hook is not None and hook_cfg is defaults:
                    self_times.append(own.seconds / (time.perf_counter() - started))
                medians.setdefault(key, []).append(clock.median)
                return clock.seconds
        return run

    defaults = dict(grad_norm_interval=100, scalar_interval=None, train_image_interval=500, max_layers_to_log=20,
                    val_image_interval=10, skeleton=None)
    everything = dict(grad_norm_interval=1, scalar_interval=1, train_image_interval=1, weight_hist_interval=1,
                      max_layers_to_log=20, skeleton=None)
    import torch

    # One intra-op thread: all compute on the training thread, no OpenMP workers spin-waiting.
    # With two, whole-process CPU per step swung by -28 … +57 % between identical runs here.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times = interleaved({"none": variant("none", None), "none-again": variant("none-again", None),
                             "defaults": variant("defaults", defaults), "all=1": variant("all=1", everything)},
                            trials)
    finally:
        torch.set_num_threads(threads)
    d = ratio_stats(times, "defaults", "none")
    a = ratio_stats(times, "all=1", "none")
    aa = ratio_stats(times, "none-again", "none")
    md = ratio_stats(medians, "defaults", "none")
    maa = ratio_stats(medians, "none-again", "none")
    base_ms = statistics.median(times["none"]) * 1000
    return [
        ("mmengine median step, no hook vs no hook (A/A: the noise floor)", fmt(*maa, as_overhead=True), "—", "—"),
        ("mmengine median step, hook at defaults vs no hook",
         fmt(*md, as_overhead=True) + f"; median step {statistics.median(medians['none']) * 1000:.1f} ms CPU, 1 torch thread",
         "≤ +1 %", _met(md[0] <= 1.01)),
        ("mmengine mean step (logging steps included), no hook vs no hook (A/A)", fmt(*aa, as_overhead=True), "—",
         "—"),
        ("mmengine mean step, hook at defaults vs no hook", fmt(*d, as_overhead=True) + f"; step {base_ms:.1f} ms CPU",
         "(reported)", "—"),
        self_time_row("mmengine: training-thread time inside the hook at defaults (self time / run time)",
                      self_times, 0.01),
        ("mmengine step, every interval = 1 vs no hook", fmt(*a, as_overhead=True), "(reported)", "—"),
    ]


# ----------------------------------------------------------------------------- 2 Keras
def bench_keras(quick: bool) -> List[Row]:
    import keras
    import numpy as np

    import unitb

    epochs = 2 if quick else 3
    trials = 1 if quick else 7
    rng = np.random.default_rng(0)
    samples = 256 if quick else 1024  # 64 batches an epoch: weight histograms are per epoch
    x = rng.random((samples, 64, 64, 3)).astype("float32")
    y = rng.random((samples, 10)).astype("float32")

    def model():  # a small detector-sized conv net: ~20 ms per batch of 16 on 2 CPU cores
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
                              keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
        m.compile(optimizer="adam", loss="mse")
        return m

    self_times: List[float] = []
    thread_cpu: Dict[str, List[float]] = {}  # CPU time of the thread that runs fit(), per variant

    def variant(key, make_callbacks, measure_self=False):
        def run() -> float:
            with tempfile.TemporaryDirectory() as logdir:
                m = model()
                callbacks = make_callbacks(logdir)
                m.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=callbacks)  # trace + warm up
                own = SelfTime()
                if measure_self:
                    own.wrap(callbacks[0], "on_train_batch_begin", "on_epoch_begin", "on_epoch_end", "on_train_begin",
                             "on_train_end")
                start, wall, own_thread = CLOCK(), time.perf_counter(), time.thread_time()
                m.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=callbacks)
                seconds = CLOCK() - start
                thread_cpu.setdefault(key, []).append(time.thread_time() - own_thread)
                if measure_self:
                    self_times.append(own.seconds / (time.perf_counter() - wall))
                for cb in callbacks:
                    getattr(cb, "close", lambda: None)()
                return seconds
        return run

    steps = epochs * len(x) // 16
    times = interleaved({
        "none": variant("none", lambda d: []),
        "none-again": variant("none-again", lambda d: []),
        "keras": variant("keras", lambda d: [keras.callbacks.TensorBoard(d, histogram_freq=1, update_freq="batch")]),
        "unitb": variant("unitb", lambda d: [unitb.TFCallback(d)], measure_self=True),
        # Same content as Keras' callback: loss every batch, weight histograms every epoch.
        # Synchronous writes: all of unitb's work on the training thread, as all of Keras' is.
        "unitb-same": variant("unitb-same", lambda d: [unitb.TFCallback(d, scalar_interval=1, log_grad_norm=False,
                                                                         async_writes=False)]),
        "unitb-sync": variant("unitb-sync", lambda d: [unitb.TFCallback(d, async_writes=False)]),
        "unitb-same-async": variant("unitb-same-async",
                                    lambda d: [unitb.TFCallback(d, scalar_interval=1, log_grad_norm=False)]),
    }, trials)
    # Training-thread CPU: the Python work fit() does between steps (callbacks included), free
    # of the intra-op thread pools whose spinning makes whole-process CPU swing by +-10 %.
    base_thread = statistics.median(thread_cpu["none"])
    extra = {k: statistics.median(thread_cpu[k]) - base_thread
             for k in ("keras", "unitb-same", "none-again", "unitb-sync", "unitb-same-async")}
    relative_thread = extra["unitb-same"] / extra["keras"] if extra["keras"] > 0 else float("nan")
    relative_async = extra["unitb-same-async"] / extra["keras"] if extra["keras"] > 0 else float("nan")
    u = ratio_stats(times, "unitb", "none")
    k = ratio_stats(times, "keras", "none")
    s = ratio_stats(times, "unitb-same", "none")
    over_k, over_s = k[0] - 1, s[0] - 1
    relative = over_s / over_k if over_k > 0 else float("nan")
    step_ms = statistics.median(times["none"]) / steps * 1000
    aa = ratio_stats(times, "none-again", "none")
    return [
        ("Keras fit, no callback vs no callback (A/A: the noise floor)", fmt(*aa, as_overhead=True), "—", "—"),
        ("Keras fit, TFCallback at defaults vs no callback", fmt(*u, as_overhead=True) + f"; step {step_ms:.1f} ms CPU",
         "≤ +2 % (noise-bound here)", _met(u[0] <= 1.02)),
        self_time_row("Keras fit: training-thread time inside TFCallback at defaults (self time / fit time)",
                      self_times, 0.02),
        ("Keras fit, TFCallback at defaults with synchronous writes (all its work on the training thread): "
         "training-thread CPU added / step CPU",
         f"{extra['unitb-sync'] / steps * 1000:+.2f} ms a step = {extra['unitb-sync'] / steps / (step_ms / 1000) * 100:+.2f} %"
         f" (A/A {extra['none-again'] / steps * 1000:+.2f} ms)", "≤ +2 %",
         _met(extra["unitb-sync"] / steps <= 0.02 * step_ms / 1000)),
        ("Keras fit, keras TensorBoard(histogram_freq=1, update_freq='batch') vs none", fmt(*k, as_overhead=True),
         "(reference)", "—"),
        ("Keras fit, TFCallback with the same content (loss + LR every batch, weights every epoch) vs none",
         fmt(*s, as_overhead=True),
         "(reported)", "—"),
        ("… its overhead relative to Keras' own callback (whole-process CPU)",
         f"{relative:.2f}×" if relative == relative else
         "not measurable: Keras' own overhead is inside the noise (median ≤ 0) in this run", "(reported)", "—"),
        ("… the same content, training-thread CPU (what the loop waits for; unitb at its default async writes): "
         "unitb +{:.2f} ms a step, Keras +{:.2f} ms (A/A {:+.2f} ms)".format(
            extra["unitb-same-async"] / steps * 1000, extra["keras"] / steps * 1000, extra["none-again"] / steps * 1000),
         f"{relative_async:.2f}×", "≤ 0.5×", _met(relative_async <= 0.5)),
        ("… the same content, all of unitb's work on the training thread (async_writes=False): unitb +{:.2f} ms a "
         "step".format(extra["unitb-same"] / steps * 1000),
         f"{relative_thread:.2f}×", "(reported: total work)", "—"),
    ]


# ----------------------------------------------------------------------------- 3 grad norm
def _startup_model(optimizer: str):
    """The Keras start-up rows' model (a small conv net, ~16-20 ms a step here), compiled."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
                              keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _step_seconds(model, x, y, steps: int, batch: int, repeats: int = 3) -> float:
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

    build = _startup_model

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

    def fit(steps: int, callback: bool, optimizer: str = "adam", **options) -> float:
        model = build(optimizer)
        clock = PhaseClock()
        callbacks = [unitb.TFCallback(tempfile.mkdtemp(prefix="unitb-start-"), **options)] if callback else []
        started = time.perf_counter()
        model.fit(x[:steps * 16], y[:steps * 16], batch_size=16, epochs=1, verbose=0, callbacks=callbacks + [clock])
        ended = time.perf_counter()
        if steps == short and not options:
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

    fixed, step, per_step = start_up("unitb", "none")
    sgd_fixed, sgd_step, _ = start_up("unitb-sgd", "none-sgd")
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
         "≤ 5 steps", _met(fixed <= 5 * step)),
        ("… the same with SGD (Keras traces its step once either way)",
         f"{sgd_fixed * 1000:+.0f} ms = {sgd_fixed / sgd_step:.1f} steps of {sgd_step * 1000:.1f} ms "
         f"(A/A {sgd_aa * 1000:+.0f} ms)", "≤ 5 steps", _met(sgd_fixed <= 5 * sgd_step)),
        (f"… SGD, the {short}-step fit timed per phase by a callback after TFCallback (fastest of {trials}): "
         "what TFCallback adds to " + ", ".join(phase_names),
         " / ".join(f"{phase_delta(name) * 1000:+.0f} ms" for name in phase_names)
         + f" = {sum(phase_delta(n) for n in phase_names) / sgd_step:.1f} steps", "≤ 5 steps",
         _met(sum(phase_delta(n) for n in phase_names) <= 5 * sgd_step)),
        ("Keras fit(): per-step cost of TFCallback at defaults (slope between the two lengths)",
         f"{per_step * 1000:+.2f} ms a step", "(reported)", "—"),
        (f"… what log_graph=True adds to a fit's start-up / profile_steps=(2, 3) adds to a {short}-step fit",
         f"{graph * 1000:+.0f} ms / {profile * 1000:+.0f} ms", "(reported)", "—"),
        ("… a later fit() of the same model with the same callback (for epoch in range(E): model.fit(epochs=1))",
         f"{again * 1000:+.0f} ms a fit ({best['repeat-unitb'] * 1000:.0f} vs {best['repeat-none'] * 1000:.0f} ms)",
         "stays small", _met(again <= 5 * step)),
    ]


def bench_keras_refit(quick: bool) -> List[Row]:
    """``for epoch in range(E): model.fit(..., epochs=1, callbacks=[cb])`` with one TFCallback,
    against the same loop without it: what each later fit costs (a small Dense model, 6 fits of
    8 steps after a first one, best of N trials, interleaved), for SGD and Adam."""
    import keras
    import numpy as np

    import unitb

    fits, steps, trials = (2, 4, 1) if quick else (6, 8, 4)
    rng = np.random.default_rng(0)
    x = rng.random((steps * 32, 32)).astype("float32")
    y = rng.random((steps * 32, 1)).astype("float32")

    def loop(optimizer: str, callback: bool) -> Callable[[], float]:
        def run() -> float:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                                      keras.layers.Dense(1)])
            model.compile(optimizer=optimizer, loss="mse")
            callbacks = [unitb.TFCallback(tempfile.mkdtemp(prefix="unitb-refit-"))] if callback else []
            model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)  # the first fit: not timed
            started = time.perf_counter()
            for _ in range(fits):
                model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=callbacks)
            took = (time.perf_counter() - started) / fits
            for cb in callbacks:
                cb.close()
            return took
        return run

    rows: List[Row] = []
    for optimizer in ("sgd", "adam"):
        times = interleaved({"none": loop(optimizer, False), "unitb": loop(optimizer, True)}, trials)
        keras.utils.set_random_seed(0)
        dense = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
        dense.compile(optimizer=optimizer, loss="mse")
        dense_step = _step_seconds(dense, np.tile(x, (5, 1)), np.tile(y, (5, 1)), steps, 32, trials if quick else 3)
        images = rng.random((steps * 5 * 16, 64, 64, 3)).astype("float32")
        labels = rng.random((steps * 5 * 16, 10)).astype("float32")
        step = _step_seconds(_startup_model(optimizer), images, labels, steps, 16, trials if quick else 3)
        extra = min(times["unitb"]) - min(times["none"])
        rows.append((f"Keras: a later fit() of the same model with the same TFCallback ({optimizer.upper()}, "
                     f"Dense 32-64-1, {fits} one-epoch fits of {steps} steps after a first one, best of {trials})",
                     f"{extra * 1000:+.1f} ms a fit ({min(times['unitb']) * 1000:.1f} vs "
                     f"{min(times['none']) * 1000:.1f} ms a fit) = {extra / step:.1f} steps of the start-up rows' "
                     f"model ({step * 1000:.1f} ms); {extra / dense_step:.0f} steps of this Dense model, whose "
                     f"step costs {dense_step * 1000:.2f} ms beside Keras' own per-fit work",
                     "≤ 5 steps of the benchmark model", _met(extra <= 5 * step)))
    return rows


def bench_grad_norm(quick: bool) -> List[Row]:
    import numpy as np
    import tensorflow as tf
    import torch

    from tf_adapter import measure as tf_measure
    from torch_adapter.measure import GradNormProbe

    number = 20 if quick else 200
    trials = 1 if quick else 7
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(64, 64) for _ in range(60)])  # 120 parameter tensors
    model(torch.randn(8, 64)).sum().backward()
    probe = GradNormProbe(model, 20, lambda: True)

    def before():  # the naive way: one .item() per parameter
        total = 0.0
        for _, p in model.named_parameters():
            total += p.grad.data.norm(2).item() ** 2
        return total ** 0.5

    def bare():
        grads = [p.grad for p in model.parameters()]
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item()

    timed = lambda fn: lambda: min(timeit.repeat(fn, number=number, repeat=3)) / number
    t = interleaved({"before": timed(before), "bare": timed(bare), "unitb": timed(probe.measure)}, trials)
    u = ratio_stats(t, "unitb", "bare")
    b = ratio_stats(t, "before", "bare")
    assert abs(probe.measure()[0] - bare()) < 1e-3 * bare()

    variables = [tf.Variable(np.random.default_rng(i).normal(size=(64, 64)).astype("float32")) for i in range(120)]
    grads = [v * 0.01 for v in variables]
    picked = list(range(0, 120, 6))
    unitb_fn = tf.function(lambda g: tf_measure.norms_in_graph(g, picked))
    global_fn = tf.function(lambda g: tf.linalg.global_norm(g))
    unitb_fn(grads), global_fn(grads)
    tf_t = interleaved({"tf-global": timed(lambda: global_fn(grads).numpy()),
                        "tf-unitb": timed(lambda: unitb_fn(grads).numpy())}, trials)
    tu = ratio_stats(tf_t, "tf-unitb", "tf-global")
    return [
        ("grad norm (120 tensors): unitb probe vs bare _foreach_norm + one sync", fmt(*u), "≤ 1.2×",
         _met(u[0] <= 1.2)),
        ("grad norm: the naive loop (.item() per tensor) vs bare", fmt(*b), "(reference)", "—"),
        ("grad norm in-graph: unitb (global + 20 layers) vs tf.linalg.global_norm", fmt(*tu), "≤ 1.2×",
         _met(tu[0] <= 1.2)),
    ]


# ----------------------------------------------------------------------------- 4 per record
def bench_records(quick: bool) -> List[Row]:
    import numpy as np
    import tensorflow as tf
    from torch.utils.tensorboard import SummaryWriter

    from tf_adapter.sink import TFSummarySink
    from torch_adapter.sink import SummaryWriterSink
    from unitb import schema
    from unitb.write import render
    from unitb.life.own_values import OwnValues
    from unitb.write.writer import RunLogger

    n = 200 if quick else 3000
    trials = 1 if quick else 5
    rows: List[Row] = []
    with tempfile.TemporaryDirectory() as root:
        raw_writer = SummaryWriter(os.path.join(root, "raw"))
        run = RunLogger(SummaryWriterSink(SummaryWriter(os.path.join(root, "unitb"))))
        tf_raw = tf.summary.create_file_writer(os.path.join(root, "tfraw"))
        tf_run = RunLogger(TFSummarySink(os.path.join(root, "tfunitb")))

        def per_call(fn):
            def run_once() -> float:
                start = time.perf_counter()
                for i in range(n):
                    fn(i)
                return (time.perf_counter() - start) / n
            return run_once

        def tf_raw_scalar(i):
            with tf_raw.as_default():
                tf.summary.scalar("train/loss", 0.5, step=i)

        t = interleaved({"torch-raw": per_call(lambda i: raw_writer.add_scalar("train/loss", 0.5, i)),
                         "torch-unitb": per_call(lambda i: run.scalar("train/loss", 0.5, i)),
                         "tf-raw": per_call(tf_raw_scalar),
                         "tf-unitb": per_call(lambda i: tf_run.scalar("train/loss", 0.5, i))}, trials)
        own_torch, own_tf = OwnValues(run), OwnValues(tf_run)
        names = [f"my/value_{k}" for k in range(10)]

        def tf_raw_ten(i):
            with tf_raw.as_default():
                for name in names:
                    tf.summary.scalar(name, 0.5, step=i)

        o = interleaved({"torch-raw": per_call(lambda i: [raw_writer.add_scalar(nm, 0.5, i) for nm in names]),
                         "torch-own": per_call(lambda i: [own_torch.scalar(nm, 0.5, i) for nm in names]),
                         "tf-raw": per_call(tf_raw_ten),
                         "tf-own": per_call(lambda i: [own_tf.scalar(nm, 0.5, i) for nm in names])}, trials)
        run.flush()
        tf_run.flush()
        os_, ot = ratio_stats(o, "torch-own", "torch-raw"), ratio_stats(o, "tf-own", "tf-raw")
        rows.append(("10 of your own scalars a step (log_scalar): unitb vs 10× SummaryWriter.add_scalar", fmt(*os_)
                     + f"; raw {statistics.median(o['torch-raw']) * 1e6:.0f} µs a step", "≤ 1.5×", _met(os_[0] <= 1.5)))
        rows.append(("10 of your own scalars a step (log_scalar): unitb vs 10× tf.summary.scalar", fmt(*ot)
                     + f"; raw {statistics.median(o['tf-raw']) * 1e6:.0f} µs a step", "≤ 1.5×", _met(ot[0] <= 1.5)))
        ts = ratio_stats(t, "torch-unitb", "torch-raw")
        tt = ratio_stats(t, "tf-unitb", "tf-raw")
        rows.append(("scalar, time on the training thread: unitb vs SummaryWriter.add_scalar", fmt(*ts)
                     + f"; raw {statistics.median(t['torch-raw']) * 1e6:.0f} µs", "≤ 1.5×", _met(ts[0] <= 1.5)))
        rows.append(("scalar, time on the training thread: unitb vs tf.summary.scalar", fmt(*tt)
                     + f"; raw {statistics.median(t['tf-raw']) * 1e6:.0f} µs", "≤ 1.5×", _met(tt[0] <= 1.5)))

        sync = RunLogger(SummaryWriterSink(SummaryWriter(os.path.join(root, "sync"))), async_writes=False)
        weights = {f"layer{i}": np.random.default_rng(i).normal(size=100_000) for i in range(4)}
        batch = np.random.default_rng(0).random((4, 3, 128, 128)).astype("float32")
        heavy = 10 if quick else 40

        def blocked(logger):
            def once() -> float:
                start = time.perf_counter()
                for i in range(heavy):
                    logger.histograms(schema.weights_histogram, i, weights)
                    logger.image("train", i, lambda: render.render_batch(batch))
                seconds = time.perf_counter() - start
                logger.flush()
                return seconds
            return once

        h = interleaved({"async": blocked(run), "sync": blocked(sync)}, trials)
        run.flush()
        hr = ratio_stats(h, "async", "sync")
        rows.append(("histograms + image: training-thread time, async writer vs synchronous", fmt(*hr), "≤ 0.10×",
                     _met(hr[0] <= 0.10)))
        run.close()
        sync.close()
        tf_run.close()
    return rows


# ----------------------------------------------------------------------------- PyTorch start without TensorFlow
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
    for kind, label in (("logger", "TorchLogger, 20 steps"), ("mmengine", "mmengine Runner + hook + TensorboardVisBackend, 20 steps")):
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
                         "≤ +5 %", _met(median <= 1.05)))
            rows.append((f"{label}, {name}: as before, TensorFlow loaded by tensorboard's file I/O, vs hidden",
                         fmt(statistics.median(before), min(before), max(before), as_overhead=True)
                         + f"; {statistics.median(r[index] for r in results['loaded']):.1f} {unit}",
                         "(reference)", "—"))
    return rows


# ----------------------------------------------------------------------------- own values
def bench_own_values(quick: bool) -> List[Row]:
    """What a figure and a long text cost the training thread: ``log_figure`` (the figure taken
    out of pyplot, drawn on the writer thread) beside ``close=False`` (drawn at the call, as
    before) and a bare ``savefig``; ``log_text`` of 10 MB."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from torch_adapter import TorchLogger

    def figure():
        fig, axes = plt.subplots(figsize=(8, 6), dpi=100)
        axes.plot(np.random.randn(5000).cumsum())
        axes.imshow(np.random.rand(200, 200), extent=(0, 5000, -50, 50), aspect="auto")
        return fig

    trials = 2 if quick else 7
    rows: List[Row] = []
    with tempfile.TemporaryDirectory() as root:
        log = TorchLogger(os.path.join(root, "run"), log_speed=False, log_model_stats=False)

        def timed(call) -> float:
            start = time.perf_counter()
            call()
            return time.perf_counter() - start

        def handed() -> float:
            fig = figure()
            return timed(lambda: log.log_figure("f", fig, step=1))

        def kept() -> float:
            fig = figure()
            seconds = timed(lambda: log.log_figure("g", fig, step=1, close=False))
            plt.close(fig)
            return seconds

        def bare() -> float:
            fig = figure()
            seconds = timed(lambda: fig.savefig(io.BytesIO(), format="png"))
            plt.close(fig)
            return seconds

        times = interleaved({"handed": handed, "kept": kept, "savefig": bare}, trials)
        text = "x" * 10_000_000
        texts = [timed(lambda: log.log_text("t", text, step=1)) for _ in range(trials)]
        log.close()
    median = {name: statistics.median(values) for name, values in times.items()}
    rows.append(("log_figure (an 800×600 plot and image): time on the training thread",
                 f"{median['handed'] * 1000:.1f} ms; close=False (drawn at the call) {median['kept'] * 1000:.0f} ms; "
                 f"a bare savefig {median['savefig'] * 1000:.0f} ms", "≤ 5 ms", _met(median["handed"] <= 0.005)))
    rows.append(("log_text of 10 MB: time on the training thread", f"{statistics.median(texts) * 1000:.1f} ms",
                 "≤ 5 ms", _met(statistics.median(texts) <= 0.005)))
    return rows


# ----------------------------------------------------------------------------- sweeps
# A trial as small as a trial can be: it copies a prepared event file (one val/loss point) into
# its folder, so its process is little more than the interpreter starting.
TINY_TRIAL = """
import json, os, shutil, sys
shutil.copy(sys.argv[1], os.path.join(json.loads(os.environ["UNITB_SWEEP_TRIAL"])["logdir"], "events.out.tfevents.0.x"))
"""
# A trial that writes like a training run for SECONDS: 20 scalars a step (an event each, as
# SummaryWriter writes them), 100 steps a second, flushed each second (as unitb does inside a
# trial), for the agent to follow; its metric val/loss every EVERY-th step.
BUSY_TRIAL = """
import json, os, sys, time
sys.modules["tensorflow"] = None
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter
writer = EventFileWriter(json.loads(os.environ["UNITB_SWEEP_TRIAL"])["logdir"], flush_secs=1)
seconds, every = float(sys.argv[1]), int(sys.argv[2])
start, step = time.monotonic(), 0
while time.monotonic() - start < seconds:
    step += 1
    for tag in (["val/loss"] if step % every == 0 else []) + [f"train/t{i}" for i in range(19)]:
        writer.add_event(Event(step=step, wall_time=time.time(), summary=Summary(value=[
            Summary.Value(tag=tag, simple_value=1.0 / step)])))
    time.sleep(0.01)
writer.close()
"""


def _sweep_in(root: str, program: str, parameters: dict, *arguments: str, method: str = "random",
              database: Optional[str] = None):
    from unitb.sweep import study

    raw = {"program": program, "method": method, "metric": {"name": "val/loss", "goal": "minimize"},
           "parameters": parameters, "command": ["${env}", "${interpreter}", "${program}", *arguments]}
    return study.create(raw, logdir=root, database=database)


def _postgres():
    """The tests' PostgreSQL server (tests/pg_server.py), or None where PostgreSQL is not installed."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from pg_server import PostgresServer, binaries

    return PostgresServer().start() if binaries() is not None else None


SEARCHED = {"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
            "batch_size": {"values": [8, 16, 32, 64]}, "dropout": {"min": 0.0, "max": 0.5},
            "layers": {"min": 1, "max": 8}}


def bench_sweep(quick: bool) -> List[Row]:
    """The agent's own cost: the time it adds between trials beyond the trials' processes (the
    same processes run back to back by a plain loop), the CPU it spends following a busy trial's
    events, and the sampler's time to suggest a trial once 100 have run (the journal storage
    as agents use it)."""
    import optuna
    from tensorboard.compat.proto.summary_pb2 import Summary

    from unitb.life.sweep_trial import TrialInfo
    from unitb.sweep import space
    from unitb.sweep.agent import Agent, child_environment
    from unitb.sweep.config import parse
    from unitb.sweep.study import open_storage
    from unitb.write import protos

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows: List[Row] = []
    count = 4 if quick else 20
    with tempfile.TemporaryDirectory() as root:
        program = os.path.join(root, "trial.py")
        with open(program, "w") as handle:
            handle.write(TINY_TRIAL)
        point = os.path.join(root, "point")
        protos.write_events(point, [(Summary(value=[Summary.Value(tag="val/loss", simple_value=0.5)]), 1)])
        server = None if quick else _postgres()  # the smoke run keeps to the journal file
        stores = [("journal file", None, 0.3)]
        if server is not None:
            stores.append(("PostgreSQL on loopback", "postgres", 1.0))
        for label, kind, goal in stores:
            gaps = []
            for n in range(1 if quick else 3):
                database = server.database(f"gap{n}") if kind and server is not None else None
                sweep = _sweep_in(root, program, {"x": {"min": 0.0, "max": 1.0}}, point, database=database)
                start = time.perf_counter()
                Agent(sweep, count, say=lambda _line: None).run()
                agent_seconds = time.perf_counter() - start
                info = TrialInfo("plain", 0, {"x": 0.5}, os.path.join(root, "plain"))
                os.makedirs(os.path.join(root, "plain"), exist_ok=True)
                start = time.perf_counter()
                for _ in range(count):
                    subprocess.run([sys.executable, program, point], env=child_environment(info), check=True)
                gaps.append((agent_seconds - (time.perf_counter() - start)) / count)
            rows.append((f"sweep agent: time it adds between trials beyond the trial's own process ({count} tiny "
                         f"trials, {label}, vs the same processes run back to back)",
                         f"{statistics.median(gaps) * 1000:.0f} ms a trial (trials {min(gaps) * 1000:.0f} … "
                         f"{max(gaps) * 1000:.0f} ms)", f"≤ {goal * 1000:.0f} ms",
                         _met(statistics.median(gaps) <= goal)))

        # Eight agents at once on one grid: every combination once, whatever the races.
        import threading

        for label, kind in [(s[0], s[1]) for s in stores]:
            database = server.database("eight") if kind and server is not None else None
            grid = {"x": {"values": list(range(8))}, "y": {"values": list(range(2 if quick else 4))}}
            sweep = _sweep_in(root, program, grid, point, method="grid", database=database)
            agents = [Agent(sweep, say=lambda _line: None) for _ in range(8)]
            threads = [threading.Thread(target=agent.run) for agent in agents]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            trials = sweep.study().get_trials()
            ran = [t for t in trials if t.state.name == "COMPLETE"]
            combos = [(t.params["x"], t.params["y"]) for t in ran]
            skipped = sum(1 for t in trials if t.user_attrs.get("unitb.skipped"))
            twice = len(combos) - len(set(combos))
            size = len(grid["x"]["values"]) * len(grid["y"]["values"])
            rows.append((f"sweep: 8 agents at once on a {size}-combination grid ({label}, tiny trials)",
                         f"{len(set(combos))} combinations, {twice} run twice, {skipped} skipped in races; "
                         f"{wall / max(1, len(ran)) * 1000:.0f} ms of wall time a trial",
                         "each once", _met(twice == 0 and len(set(combos)) == size)))
        if server is not None:
            server.stop()

        busy = os.path.join(root, "busy.py")
        with open(busy, "w") as handle:
            handle.write(BUSY_TRIAL)
        # Two trial lengths: the difference is the following alone (a trial's fixed costs are
        # the row above).
        for every, what, goal in ((100, "its metric once a second", 0.01),
                                  (1, "its metric at every step (100 a second: each one an Optuna report)", None)):
            spent = {}
            for seconds in ((0.5, 1.5) if quick else (2.0, 12.0)):
                sweep = _sweep_in(root, busy, {"x": {"min": 0.0, "max": 1.0}}, str(seconds), str(every))
                cpu, wall = time.process_time(), time.perf_counter()
                Agent(sweep, 1, say=lambda _line: None).run()
                spent[seconds] = (time.process_time() - cpu, time.perf_counter() - wall)
            (short_cpu, short_wall), (long_cpu, long_wall) = spent.values()
            share = (long_cpu - short_cpu) / (long_wall - short_wall)
            rows.append((f"sweep agent: CPU it spends following a trial that writes 2,000 scalars a second, {what} "
                         f"(trials of {min(spent):g} s and {max(spent):g} s, the difference)",
                         f"{share * 100:.2f} % of a core", "≤ 1 %" if goal else "(reference)",
                         _met(share <= goal) if goal else "—"))

        total = 15 if quick else 100
        for method in ("bayes", "random"):
            config = parse({"program": "x.py", "method": method, "metric": {"name": "m"}, "parameters": SEARCHED})
            dims = space.dimensions(config)
            study = optuna.create_study(storage=open_storage(os.path.join(root, f"{method}.log")),
                                        sampler=space.sampler(config, 0))
            times = []
            for _ in range(total):
                start = time.perf_counter()
                trial = study.ask()
                values = space.suggest(trial, dims)
                times.append(time.perf_counter() - start)
                study.tell(trial, (values["lr"] - 1e-3) ** 2 + values["dropout"] + values["layers"] / 100)
            last = times[-10:]
            rows.append((f"sweep: time to suggest a trial after {total - 10}–{total} trials, {method} "
                         f"({'TPE' if method == 'bayes' else 'RandomSampler'}, 4 parameters, journal storage)",
                         f"{statistics.median(last) * 1000:.0f} ms (trials {min(last) * 1000:.0f} … "
                         f"{max(last) * 1000:.0f} ms)", "≤ 1 s" if method == "bayes" else "(reference)",
                         _met(statistics.median(last) <= 1.0) if method == "bayes" else "—"))
    return rows


# ----------------------------------------------------------------------------- 5 memory
def bench_memory(quick: bool) -> List[Row]:
    import numpy as np
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from torch_adapter.images import host_images
    from torch_adapter.sink import SummaryWriterSink
    from unitb import schema
    from unitb.write.writer import RunLogger

    batch = torch.zeros(32, 3, 256, 192)  # a typical top-down pose batch
    kept = host_images(batch, 4)
    rows = [("first-batch image cache at batch 32 (max_train_images=4)",
             f"{kept.nbytes / 2 ** 20:.1f} MiB kept vs {batch.numel() * 4 / 2 ** 20:.1f} MiB for the batch",
             "only 4 images", _met(kept.shape[0] == 4))]

    def rss_mb() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

    steps = 200 if quick else 1000
    with tempfile.TemporaryDirectory() as root:
        run = RunLogger(SummaryWriterSink(SummaryWriter(root)))
        values = {"a": np.random.default_rng(0).normal(size=10_000)}

        def log(step):
            run.scalar("train/loss", 0.1, step)
            run.grad_norms(step, 1.0, {"a": 1.0, "b": 2.0})
            run.histograms(schema.weights_histogram, step, values)
        for step in range(1, 101):
            log(step)
        run.flush()
        before = rss_mb()
        for step in range(101, 101 + steps):
            log(step)
        run.flush()
        growth = rss_mb() - before
        run.close()
    rows.append((f"RSS growth over {steps} logged steps (scalars + grad norms + a histogram each)",
                 f"{growth:+.1f} MiB", "no growth beyond the queue", _met(growth < 20)))
    return rows


# ----------------------------------------------------------------------------- object storage
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
         fmt(*up, True) + f"; wall {fmt(*wall_up, True)}", "≤ +5 %", _met(up[0] <= 1.05)),
        ("… with the store down for the whole loop (uploads failing and retried)",
         fmt(*down, True) + f"; wall {fmt(*wall_down, True)}", "≤ +5 %", _met(down[0] <= 1.05)),
        ("last upload at close() (store up; after an outage: the backlog)",
         f"median {statistics.median(closes):.2f} s, max {max(closes):.2f} s", "bounded by upload_timeout",
         _met(max(closes) <= 31)),
    ]


# ----------------------------------------------------------------------------- W&B / MLflow
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
                     "≤ +5 %", _met(median_step[0] <= 1.05)))
    for name, label in (("tb+own wandb.log", "the loop calling run.log({'train/loss': …}, step=) itself every step"),
                        ("tb+own mlflow", "the loop calling MlflowClient.log_metric(…, step=) itself every step")):
        rows.append((f"… for comparison: {label} (TensorBoard through unitb as well)",
                     fmt(*ratio_stats(steps_of, name, "tb"), True)
                     + f"; wall {fmt(*ratio_stats(times, name, 'tb'), True)}", "(reference)", "—"))
    for name in ("wandb", "mlflow"):
        rows.append((f"close() with {name}: the rest sent and the backend run finished",
                     f"median {statistics.median(closes[name]):.2f} s, max {max(closes[name]):.2f} s",
                     "bounded by backend_timeout (30 s)", _met(max(closes[name]) <= 31)))
    return rows


READERS = {
    # name: (imports, body) run in a fresh process on RUN; the time is measured around the body
    "unitb tags": ("from unitb import reader", "reader.tag_summary(RUN)"),
    "unitb export csv": ("import os\nfrom unitb.commands import cli", "cli.main(['export', RUN, '-o', os.devnull])"),
    "unitb diff (layout of one run)": ("from unitb.read import diff", "diff.layout_of(RUN)"),
    "unitb reader.scalars()": ("from unitb import reader", "reader.scalars(RUN)"),
    "unitb reader.scalar_arrays()": ("from unitb import reader", "reader.scalar_arrays(RUN)"),
    "tbparse SummaryReader(run).scalars": ("from tbparse import SummaryReader", "SummaryReader(RUN).scalars"),
    "EventAccumulator.Reload()": ("from tensorboard.backend.event_processing.event_accumulator import EventAccumulator",
                                  "EventAccumulator(RUN, size_guidance={'scalars': 0}).Reload()"),
}
UNITB_READERS = [name for name in READERS if name.startswith("unitb")]
PEER = "tbparse SummaryReader(run).scalars"
# Peak RSS from /proc VmHWM: getrusage's ru_maxrss survives exec, so a child started from a
# parent that holds TensorFlow would report the parent's peak.
_READ_SNIPPET = """
import sys, time
RUN = sys.argv[1]
{imports}
t = time.perf_counter()
{body}
took = time.perf_counter() - t
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(took, int(peak) / 1024)
"""


def make_scalar_run(path: str, events: int, tags: int = 10) -> None:
    """A run of ``events`` plain scalars (``simple_value``, as torch's SummaryWriter writes
    them) over ``tags`` tags, written record by record with tensorboard's own writer."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(path, max_queue_size=100000, flush_secs=600)
    for index in range(events):
        step, tag = index // tags + 1, index % tags
        value = summary_pb2.Summary.Value(tag=f"train/tag{tag}", simple_value=step * 0.001 + tag)
        writer.add_event(event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary_pb2.Summary(value=[value])))
    writer.close()


def make_tf_form_run(path: str, values: int, tags: int = 10) -> None:
    """A run of ``values`` scalars in the tensor form unitb's TF sink writes (one event a step
    holding every tag, scalars plugin metadata on each value) with real-clock wall times, and a
    histogram event every 1000 steps."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from unitb.write import protos

    import numpy as np

    writer = EventFileWriter(path, max_queue_size=100000, flush_secs=600)
    weights = np.random.default_rng(0).normal(size=1000)
    start = time.time()
    for step in range(1, values // tags + 1):
        summary = protos.scalars_summary([(f"train/tag{tag}", step * 0.001 + tag) for tag in range(tags)])
        writer.add_event(event_pb2.Event(step=step, wall_time=start + step * 0.013, summary=summary))
        if step % 1000 == 0:
            writer.add_event(event_pb2.Event(step=step, wall_time=start + step * 0.013,
                                             summary=protos.histogram_summary("weights/layer", weights)))
    writer.close()


def _read_in_fresh_process(name: str, run: str) -> Tuple[float, float]:
    imports, body = READERS[name]
    snippet = _READ_SNIPPET.format(imports=imports, body=body)
    out = subprocess.run([sys.executable, "-c", snippet, run], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if out.returncode != 0:
        raise RuntimeError(f"{name}: {out.stderr[-2000:]}")
    seconds, rss = out.stdout.split()[-2:]
    return float(seconds), float(rss)


def _rust_loader(run: str, keep_all: bool) -> Optional[Tuple[float, float]]:
    """(seconds, peak RSS MB) of one load cycle of TensorBoard's Rust data server on ``run``, as
    it reports it in its log; ``keep_all`` keeps every scalar (unitb returns every one),
    otherwise the server keeps its default reservoir of 1000 points a tag. None when the
    tensorboard-data-server package has no binary for this platform."""
    import re

    try:
        from tensorboard_data_server import server_binary
    except ImportError:
        return None
    binary = server_binary()
    if binary is None:
        return None
    args = [binary, "--logdir", run, "--reload", "once", "--port", "0", "--die-after-stdin", "-v"]
    if keep_all:
        args += ["--samples-per-plugin", "scalars=all"]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"Finished load cycle \(([\d.]+)(ms|s|µs)\)", line)
            if found:
                seconds = float(found.group(1)) / {"s": 1, "ms": 1e3, "µs": 1e6}[found.group(2)]
                with open(f"/proc/{process.pid}/status") as status:
                    peak = [l for l in status if l.startswith("VmHWM")][0].split()[1]
                return seconds, int(peak) / 1024
        raise RuntimeError("the data server ended without finishing a load cycle")
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=30)


# Runs `unitb ARGS` from a small launcher: a child forked from this benchmark (TensorFlow loaded)
# would report this process's peak RSS as its own, since the peak survives exec.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "unitb", *sys.argv[1:]])
_pid, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
"""


def _cli_process(*args: str, env: Optional[Dict[str, str]] = None) -> Tuple[float, float]:
    """(seconds, peak RSS MB) of ``unitb ARGS`` as a whole process — interpreter start and
    imports included, which a user waits for — its worker processes' peaks included."""
    out = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *args], capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})))
    seconds, peak, code = out.stdout.split()[-3:]
    if int(code) not in (0, 1):  # diff exits 1 on runs that are not unitb's
        raise RuntimeError(f"unitb {' '.join(args)}: {out.stderr[-2000:]}")
    return float(seconds), float(peak)


CLI_COMMANDS = {
    # what a user types, on RUN. Text goes to /dev/null (the Rust loader writes nothing; writing
    # a 5M-row CSV to this VM's disk adds ~1 s of the disk's own); Parquet to a scratch file.
    "unitb tags": ("tags", "RUN"),
    "unitb export --format csv": ("export", "RUN", "-o", os.devnull),
    "unitb export --format json": ("export", "RUN", "--format", "json", "-o", os.devnull),
    "unitb export --format parquet": ("export", "RUN", "--format", "parquet", "-o", "OUT.parquet"),
    "unitb diff": ("diff", "RUN", "RUN"),
}


def _cli_best(name: str, run: str, scratch: str, trials: int, env: Optional[Dict[str, str]] = None,
              diff_of: Optional[List[str]] = None) -> Tuple[float, float]:
    """Best time and largest peak RSS of a CLI command over ``trials`` whole processes."""
    words = [w.replace("OUT", os.path.join(scratch, "out")) for w in CLI_COMMANDS[name]]
    words = [run if w == "RUN" else w for w in words]
    if name == "unitb diff" and diff_of is not None:
        words = ["diff", *diff_of]
    results = [_cli_process(*words, env=env) for _ in range(trials)]
    return min(t for t, _ in results), max(r for _, r in results)


def bench_reading(quick: bool) -> List[Row]:
    """Reading big runs and resuming them: unitb against TensorBoard's own Rust loader (and
    tbparse, EventAccumulator where installed) on the same file, each in a fresh process
    (time around the call, peak RSS of the process)."""
    import shutil
    import tempfile
    from importlib.util import find_spec

    runs = [("torch-form", 20_000)] if quick else [("torch-form", 500_000), ("tf-form", 500_000),
                                                     ("torch-form", 5_000_000)]
    rows: List[Row] = []
    if find_spec("tbparse") is None:
        rows.append(("read: tbparse", "not installed (pip install tbparse, or the `bench` extra)", "—", "—"))
    for form, events in runs:
        root = tempfile.mkdtemp(prefix="unitb-read-")
        run = os.path.join(root, "run")
        (make_scalar_run if form == "torch-form" else make_tf_form_run)(run, events)
        trials = 1 if quick or events > 1_000_000 else 3
        names = [n for n in READERS if (n != PEER or find_spec("tbparse") is not None)
                 and (n != "EventAccumulator.Reload()" or events <= 1_000_000)]
        results = {name: [_read_in_fresh_process(name, run) for _ in range(trials)] for name in names}
        best = {name: min(t for t, _ in values) for name, values in results.items()}
        rss = {name: max(r for _, r in values) for name, values in results.items()}
        rust = {keep_all: [_rust_loader(run, keep_all) for _ in range(trials)] for keep_all in (True, False)}
        label = f"{events // 1000}k" if events < 1_000_000 else f"{events // 1_000_000}M"
        size_mb = sum(os.path.getsize(os.path.join(run, f)) for f in os.listdir(run)) / 2 ** 20
        what = (f"a {label}-scalar run ({size_mb:.0f} MB, "
                + ("simple_value events as torch writes them" if form == "torch-form"
                   else "tensor-form scalars, ten an event, as unitb's TF sink writes them") + ")")
        if None in rust[True]:
            rows.append((f"read {what}: TensorBoard's Rust loader", "not available on this platform", "—", "—"))
            rust_all = rust_default = (float("nan"), float("nan"))
        else:
            rust_all = (min(t for t, _ in rust[True]), max(r for _, r in rust[True]))
            rust_default = (min(t for t, _ in rust[False]), max(r for _, r in rust[False]))
            rows.append((f"read {what}: TensorBoard's Rust data server, one load cycle (min of {trials})",
                         f"{rust_all[0]:.2f} s keeping every point, peak RSS {rust_all[1]:.0f} MB; "
                         f"{rust_default[0]:.2f} s with its default 1000-point reservoir a tag, "
                         f"{rust_default[1]:.0f} MB", "(reference)", "—"))
        for name in UNITB_READERS:
            peer = f"; tbparse {best[PEER]:.2f} s ({best[PEER] / best[name]:.0f}× slower)" if PEER in best else ""
            rows.append((f"… {name} (min of {trials})",
                         f"{best[name]:.2f} s = {best[name] / rust_all[0]:.2f}× the Rust loader keeping every point, "
                         f"{best[name] / rust_default[0]:.2f}× its default; peak RSS {rss[name]:.0f} MB{peer}",
                         "≤ 2× the Rust loader at its default", _met(best[name] <= 2 * rust_default[0])))
        scratch = os.path.join(root, "scratch")
        os.makedirs(scratch, exist_ok=True)
        for name in CLI_COMMANDS:
            if name == "unitb diff":
                continue  # the in-process layout row above is the diff of one run
            took, rss_mb = _cli_best(name, run, scratch, trials)
            rows.append((f"… `{name}` as a whole process (interpreter and imports included; min of {trials})",
                         f"{took:.2f} s = {took / rust_default[0]:.2f}× the Rust loader's default load cycle, "
                         f"{took / rust_all[0]:.2f}× keeping every point; peak RSS {rss_mb:.0f} MB",
                         "≤ 2× the Rust loader at its default", _met(took <= 2 * rust_default[0])))
        if "EventAccumulator.Reload()" in best:
            rows.append(("… EventAccumulator.Reload() (reference)",
                         f"{best['EventAccumulator.Reload()']:.2f} s; peak RSS {rss['EventAccumulator.Reload()']:.0f} MB",
                         "—", "—"))
        if form == "torch-form":
            rows.extend(_resume_rows(run, root, events, trials, label, best.get("EventAccumulator.Reload()")))
        shutil.rmtree(root, ignore_errors=True)
    return rows


def bench_logdir(quick: bool) -> List[Row]:
    """A sweep's logdir: ``unitb tags``, ``export`` (csv, json, parquet) and ``diff`` over a folder
    of runs as whole processes, against the Rust loader's load cycle over the same folder; the
    runs read by one worker a core, or by one process (``UNITB_READ_WORKERS=1``); and the same
    folder in a moto S3 bucket (the Rust loader reads local disk only: its local figure is the
    reference there)."""
    import shutil
    import tempfile

    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # s3_store, for the S3 rows
    steps, tags = (500, 10) if quick else (5000, 10)
    sizes = [4] if quick else [100, 500]
    trials = 1 if quick else 2
    rows: List[Row] = []
    root = tempfile.mkdtemp(prefix="unitb-logdir-")
    try:
        model = os.path.join(root, "model")
        make_scalar_run(model, steps * tags, tags)
        (event_file,) = os.listdir(model)
        for runs in sizes:
            logdir = os.path.join(root, f"sweep-{runs}")
            for index in range(runs):
                os.makedirs(os.path.join(logdir, f"trial-{index:03d}"))
                shutil.copy(os.path.join(model, event_file), os.path.join(logdir, f"trial-{index:03d}"))
            scratch = os.path.join(root, "scratch")
            os.makedirs(scratch, exist_ok=True)
            size_mb = runs * os.path.getsize(os.path.join(model, event_file)) / 2 ** 20
            what = f"a sweep's logdir: {runs} runs of {steps} steps × {tags} tags ({size_mb:.0f} MB)"
            rust_default = min(_rust_loader(logdir, False)[0] for _ in range(trials))  # type: ignore[index]
            rust_all = min(_rust_loader(logdir, True)[0] for _ in range(trials))  # type: ignore[index]
            rows.append((f"{what}: TensorBoard's Rust data server, one load cycle (min of {trials})",
                         f"{rust_default:.2f} s with its default reservoir; {rust_all:.2f} s keeping every point",
                         "(reference)", "—"))
            for name in CLI_COMMANDS:
                took, peak = _cli_best(name, logdir, scratch, trials, diff_of=[logdir])
                one, one_peak = (float("nan"), float("nan")) if quick else _cli_best(
                    name, logdir, scratch, 1, env={"UNITB_READ_WORKERS": "1"}, diff_of=[logdir])
                rows.append((f"… `{name} LOGDIR`, whole process, a worker a core (min of {trials})",
                             f"{took:.2f} s = {took / rust_default:.2f}× the Rust default ({took / rust_all:.2f}× "
                             f"every point); peak RSS {peak:.0f} MB a process; one process: {one:.2f} s, "
                             f"{one_peak:.0f} MB", "≤ 2× the Rust loader at its default",
                             _met(took <= 2 * rust_default)))
            if runs == sizes[0]:
                rows.extend(_logdir_in_store(logdir, scratch, rust_default, trials, what))
            shutil.rmtree(logdir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _logdir_in_store(logdir: str, scratch: str, rust_default: float, trials: int, what: str) -> List[Row]:
    """The same logdir read from a moto S3 bucket on loopback."""
    from s3_store import MotoStore

    store = MotoStore().start()
    try:
        env = store.env()
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            import s3fs

            bucket = store.make_bucket("logdir")
            started = time.perf_counter()
            s3fs.S3FileSystem(skip_instance_cache=True).put(logdir, bucket + "/sweep", recursive=True)  # not an earlier store's
            upload = time.perf_counter() - started
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        url = bucket + "/sweep"
        rows: List[Row] = []
        for name in ("unitb tags", "unitb export --format csv", "unitb diff"):
            took, peak = _cli_best(name, url, scratch, trials, env=env, diff_of=[url])
            one = float("nan") if trials == 1 else _cli_best(name, url, scratch, 1, env=dict(env, UNITB_READ_WORKERS="1"),
                                                             diff_of=[url])[0]
            rows.append((f"… the same in S3 (moto on loopback; upload {upload:.0f} s, not counted): `{name} URL` "
                         f"(min of {trials})",
                         f"{took:.2f} s = {took / rust_default:.2f}× the Rust default on local disk; peak RSS "
                         f"{peak:.0f} MB; one process: {one:.2f} s", "≤ 2× the Rust loader at its default",
                         _met(took <= 2 * rust_default)))
        return rows
    finally:
        store.stop()


def _resume_rows(run: str, root: str, events: int, trials: int, label: str,
                 accumulator: Optional[float]) -> List[Row]:
    """How long a resume's clean-up takes on the same run: without and with the step index."""
    import shutil

    from unitb.folder import set_aside
    from unitb.folder import step_index

    rows: List[Row] = []
    last_step = events // 10
    if events <= 1_000_000 and accumulator:
        for resume_step, what in ((last_step + 1, "no orphans"), (last_step - 1000, "10k orphans")):
            copies = []
            for _ in range(trials):
                target = os.path.join(root, "copy")
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(run, target)
                started = time.perf_counter()
                set_aside.truncate_run(target, resume_step)
                copies.append(time.perf_counter() - started)
            took = min(copies)
            if what == "no orphans":
                rows.append((f"resume start on the {label} run, {what}: truncate_run vs an EventAccumulator load",
                             f"{took:.2f} s = {took / accumulator:.2f}× of {accumulator:.2f} s",
                             "≤ 0.1×", _met(took / accumulator <= 0.1)))
            else:
                rows.append((f"resume start on the {label} run, {what} (steps {resume_step + 1}..{last_step})",
                             f"{took:.2f} s", "< 2 s", _met(took < 2)))
    # The same no-orphan resume when the run was written by unitb, whose writer thread keeps the
    # step index (unitb.folder.step_index) at each flush: only the bytes since the last update are read.
    target = os.path.join(root, "indexed")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run, target)
    started = time.perf_counter()
    step_index.update(target)  # in a real run: a piece at each flush, on the writer thread
    build = time.perf_counter() - started
    indexed = []
    kept = None
    for _ in range(trials):
        started = time.perf_counter()
        kept = set_aside.truncate_run(target, last_step + 1)
        indexed.append(time.perf_counter() - started)
    rows.append((f"resume start on the {label} run, no orphans, with the step index unitb's writer keeps",
                 f"{min(indexed) * 1000:.1f} ms (set aside: {kept is not None}); building the index once "
                 f"{build:.2f} s, spread over the run at each flush", "well under 1 s, any length",
                 _met(min(indexed) < 0.1 and kept is None)))
    return rows


def _timed_call(own: SelfTime, fn, *args, **kwargs):
    start = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        own.seconds += time.perf_counter() - start


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one trial: a smoke run")
    parser.add_argument("--only", nargs="*", choices=["mmengine", "keras", "keras-startup", "grad", "records", "memory", "reading",
                                                     "store", "torch-start", "backends", "sweep", "own-values",
                                                     "logdir", "keras-refit"])
    parser.add_argument("--out", help="also write the table here (default: benchmarks/RESULTS.md for full runs)")
    args = parser.parse_args(argv)
    suites = {"grad": bench_grad_norm, "records": bench_records, "memory": bench_memory,
              "reading": bench_reading, "mmengine": bench_mmengine, "keras": bench_keras,
              "keras-startup": bench_keras_startup, "store": bench_store, "torch-start": bench_torch_start,
              "backends": bench_backends, "sweep": bench_sweep, "own-values": bench_own_values,
              "logdir": bench_logdir, "keras-refit": bench_keras_refit}
    rows: List[Row] = []
    for name, fn in suites.items():
        if args.only and name not in args.only:
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(fn(args.quick))
    import tensorflow as tf
    import torch

    header = (f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
              f"torch {torch.__version__}, TensorFlow {tf.__version__}; "
              f"{'quick smoke run' if args.quick else 'full run'}, `python benchmarks/run.py"
              f"{' --quick' if args.quick else ''}`.\n")
    table = ["| benchmark | result (median, spread over trials) | target | met |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    text = header + "\n" + "\n".join(table) + "\n"
    print(text)
    out = args.out or (None if args.quick or args.only else os.path.join(HERE, "RESULTS.md"))
    if out:
        with open(out, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
