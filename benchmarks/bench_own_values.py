"""Your own values (log_scalar, log_image, log_figure) on every entry point: time on the training
thread."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import List

from bench_common import Row, interleaved, met


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
                 f"a bare savefig {median['savefig'] * 1000:.0f} ms", "≤ 5 ms", met(median["handed"] <= 0.005)))
    rows.append(("log_text of 10 MB: time on the training thread", f"{statistics.median(texts) * 1000:.1f} ms",
                 "≤ 5 ms", met(statistics.median(texts) <= 0.005)))
    return rows


# ----------------------------------------------------------------------------- sweeps
# A trial as small as a trial can be: it copies a prepared event file (one val/loss point) into
# its folder, so its process is little more than the interpreter starting.
