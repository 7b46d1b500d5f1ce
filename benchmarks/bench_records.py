"""Per record: what a scalar, histograms and images cost the training thread, and memory over a long
run."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import List

from bench_common import Row, fmt, interleaved, met, ratio_stats


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
                     + f"; raw {statistics.median(o['torch-raw']) * 1e6:.0f} µs a step", "≤ 1.5×", met(os_[0] <= 1.5)))
        rows.append(("10 of your own scalars a step (log_scalar): unitb vs 10× tf.summary.scalar", fmt(*ot)
                     + f"; raw {statistics.median(o['tf-raw']) * 1e6:.0f} µs a step", "≤ 1.5×", met(ot[0] <= 1.5)))
        ts = ratio_stats(t, "torch-unitb", "torch-raw")
        tt = ratio_stats(t, "tf-unitb", "tf-raw")
        rows.append(("scalar, time on the training thread: unitb vs SummaryWriter.add_scalar", fmt(*ts)
                     + f"; raw {statistics.median(t['torch-raw']) * 1e6:.0f} µs", "≤ 1.5×", met(ts[0] <= 1.5)))
        rows.append(("scalar, time on the training thread: unitb vs tf.summary.scalar", fmt(*tt)
                     + f"; raw {statistics.median(t['tf-raw']) * 1e6:.0f} µs", "≤ 1.5×", met(tt[0] <= 1.5)))

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
                     met(hr[0] <= 0.10)))
        run.close()
        sync.close()
        tf_run.close()
    return rows


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
             "only 4 images", met(kept.shape[0] == 4))]

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
                 f"{growth:+.1f} MiB", "no growth beyond the queue", met(growth < 20)))
    return rows
