"""Training-loop overhead: the mmengine hook and TFCallback at their defaults against no logging, a
later fit() of the same model, and the gradient-norm measurement."""
from __future__ import annotations

import statistics
import tempfile
import time
import timeit
from typing import Callable, Dict, List

from bench_common import CLOCK, Row, SelfTime, fmt, interleaved, met, ratio_stats, self_time_row, timed_call
from bench_startup import startup_model, step_seconds


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
                    GradNormProbe._pre_step = lambda *a, **k: timed_call(own, original, *a, **k)
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
         "≤ +1 %", met(md[0] <= 1.01)),
        ("mmengine mean step (logging steps included), no hook vs no hook (A/A)", fmt(*aa, as_overhead=True), "—",
         "—"),
        ("mmengine mean step, hook at defaults vs no hook", fmt(*d, as_overhead=True) + f"; step {base_ms:.1f} ms CPU",
         "(reported)", "—"),
        self_time_row("mmengine: training-thread time inside the hook at defaults (self time / run time)",
                      self_times, 0.01),
        ("mmengine step, every interval = 1 vs no hook", fmt(*a, as_overhead=True), "(reported)", "—"),
    ]


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
         "≤ +2 % (noise-bound here)", met(u[0] <= 1.02)),
        self_time_row("Keras fit: training-thread time inside TFCallback at defaults (self time / fit time)",
                      self_times, 0.02),
        ("Keras fit, TFCallback at defaults with synchronous writes (all its work on the training thread): "
         "training-thread CPU added / step CPU",
         f"{extra['unitb-sync'] / steps * 1000:+.2f} ms a step = {extra['unitb-sync'] / steps / (step_ms / 1000) * 100:+.2f} %"
         f" (A/A {extra['none-again'] / steps * 1000:+.2f} ms)", "≤ +2 %",
         met(extra["unitb-sync"] / steps <= 0.02 * step_ms / 1000)),
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
         f"{relative_async:.2f}×", "≤ 0.5×", met(relative_async <= 0.5)),
        ("… the same content, all of unitb's work on the training thread (async_writes=False): unitb +{:.2f} ms a "
         "step".format(extra["unitb-same"] / steps * 1000),
         f"{relative_thread:.2f}×", "(reported: total work)", "—"),
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
        dense_step = step_seconds(dense, np.tile(x, (5, 1)), np.tile(y, (5, 1)), steps, 32, trials if quick else 3)
        images = rng.random((steps * 5 * 16, 64, 64, 3)).astype("float32")
        labels = rng.random((steps * 5 * 16, 10)).astype("float32")
        step = step_seconds(startup_model(optimizer), images, labels, steps, 16, trials if quick else 3)
        extra = min(times["unitb"]) - min(times["none"])
        rows.append((f"Keras: a later fit() of the same model with the same TFCallback ({optimizer.upper()}, "
                     f"Dense 32-64-1, {fits} one-epoch fits of {steps} steps after a first one, best of {trials})",
                     f"{extra * 1000:+.1f} ms a fit ({min(times['unitb']) * 1000:.1f} vs "
                     f"{min(times['none']) * 1000:.1f} ms a fit) = {extra / step:.1f} steps of the start-up rows' "
                     f"model ({step * 1000:.1f} ms); {extra / dense_step:.0f} steps of this Dense model, whose "
                     f"step costs {dense_step * 1000:.2f} ms beside Keras' own per-fit work",
                     "≤ 5 steps of the benchmark model", met(extra <= 5 * step)))
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
         met(u[0] <= 1.2)),
        ("grad norm: the naive loop (.item() per tensor) vs bare", fmt(*b), "(reference)", "—"),
        ("grad norm in-graph: unitb (global + 20 layers) vs tf.linalg.global_norm", fmt(*tu), "≤ 1.2×",
         met(tu[0] <= 1.2)),
    ]
