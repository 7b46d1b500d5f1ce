"""Many runs as one table: ``unitb.runs`` over a logdir of 1,000 runs (5,000 steps × 10 tags
each) read cold (every event file, the index written) and warm (from the index), each in a fresh
process, beside TensorBoard's Rust loader over the same folder, ``mlflow.search_runs`` over the
same runs in a local MLflow store, and tbparse.

What each peer can be asked differs, and the rows say so: MLflow's runs hold each metric's latest
value (the summary ``search_runs`` searches), pushed there with their hyperparameters (50M points
a run's history would take hours to log); tbparse reads every point into pandas, so it is timed on
the first 100 runs beside unitb's cold read of the same 100.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Tuple

from bench_common import Row, met
from bench_reading import _rust_loader, make_scalar_run

TAGS = 10

_FRESH = """
import sys, time
start = time.perf_counter()
{body}
print(time.perf_counter() - start)
"""


def _fresh(body: str, *args: str) -> float:
    """Seconds ``body`` takes in a fresh interpreter (imports included: a user waits for them too)."""
    out = subprocess.run([sys.executable, "-c", _FRESH.format(body=body), *args], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[-1])


RUNS_BODY = "import unitb\ntable = unitb.runs(sys.argv[1])\nassert table.num_rows == int(sys.argv[2])"
QUESTION = ("SELECT run, \\\"train/tag0.best\\\" FROM runs WHERE \\\"train/tag0.best\\\" > 0.1 "
            "ORDER BY run LIMIT 3")
QUERY_BODY = ("from unitb.query.sql import run_query\n"
              f"answer = run_query(sys.argv[1], \"{QUESTION}\")\nassert answer.num_rows == 3")


def _logdir(root: str, runs: int, steps: int) -> str:
    model = os.path.join(root, "model")
    make_scalar_run(model, steps * TAGS, TAGS)
    (event_file,) = os.listdir(model)
    logdir = os.path.join(root, f"runs-{runs}")
    for index in range(runs):
        os.makedirs(os.path.join(logdir, f"trial-{index:04d}"))
        os.link(os.path.join(model, event_file), os.path.join(logdir, f"trial-{index:04d}", event_file))
    return logdir


def _mlflow_search(root: str, runs: int) -> Tuple[float, float]:
    """(seconds to push the runs' hyperparameters and latest metrics, seconds of one ``search_runs``
    over them in a fresh process) with a local SQLite store."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = "sqlite:///" + os.path.join(root, "mlflow.db")
    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    started = time.perf_counter()
    for index in range(runs):
        run = client.create_run(experiment, run_name=f"trial-{index:04d}")
        client.log_batch(run.info.run_id, params=[Param("optimizer", "sgd"), Param("seed", str(index))],
                         metrics=[Metric(f"train/tag{t}", 5.0 + t, 0, 5000) for t in range(TAGS)])
    pushed = time.perf_counter() - started
    body = ("import mlflow\nmlflow.set_tracking_uri(sys.argv[1])\n"
            "frame = mlflow.search_runs(experiment_names=['bench'], max_results=100000)\n"
            "assert len(frame) == int(sys.argv[2])")
    return pushed, _fresh(body, uri, str(runs))


def bench_query(quick: bool) -> List[Row]:
    runs, steps = (4, 200) if quick else (1000, 5000)
    rows: List[Row] = []
    root = tempfile.mkdtemp(prefix="unitb-query-")
    try:
        logdir = _logdir(root, runs, steps)
        what = f"{runs} runs of {steps} steps × {TAGS} tags"
        rust = _rust_loader(logdir, False)
        cold = _fresh(RUNS_BODY, logdir, str(runs))
        warm = min(_fresh(RUNS_BODY, logdir, str(runs)) for _ in range(3))
        question = min(_fresh(QUERY_BODY, logdir) for _ in range(3))
        reference = f"TensorBoard's Rust loader: {rust[0]:.2f} s (default reservoir)" if rust else "no Rust loader here"
        rows.append((f"unitb.runs over {what}, cold (every event file read, the index written), fresh process",
                     f"{cold:.2f} s" + (f" = {cold / rust[0]:.2f}× the Rust loader's load cycle" if rust else "")
                     + f"; {reference}", "≤ 2× the Rust loader", met(bool(rust) and cold <= 2 * rust[0])))
        rows.append((f"unitb.runs over {what}, warm (from the index), fresh process (min of 3)",
                     f"{warm:.2f} s", "< 0.5 s", met(warm < 0.5)))
        rows.append((f"unitb query over {what}: a question of the runs view (DuckDB), warm, fresh process (min of 3)",
                     f"{question:.2f} s", "< 0.5 s", met(question < 0.5)))
        if quick:
            rows.append(("mlflow.search_runs and tbparse over the same runs", "not run in --quick", "reported", "—"))
            return rows
        pushed, search = _mlflow_search(root, runs)
        rows.append((f"mlflow.search_runs over the same {runs} runs (their hyperparameters and latest metrics in a "
                     "local SQLite store), fresh process",
                     f"{search:.2f} s; unitb.runs warm is {search / warm:.1f}× faster (pushing the runs took "
                     f"{pushed:.0f} s)", "reported", "—"))
        subset = os.path.join(root, "first-100")
        os.makedirs(subset)
        for index in range(min(100, runs)):
            shutil.copytree(os.path.join(logdir, f"trial-{index:04d}"), os.path.join(subset, f"trial-{index:04d}"),
                            copy_function=os.link)
        ours = _fresh(RUNS_BODY, subset, str(min(100, runs)))
        body = ("from tbparse import SummaryReader\n"
                "frame = SummaryReader(sys.argv[1], extra_columns={'dir_name'}).scalars\n"
                f"assert len(frame) == {min(100, runs) * steps * TAGS}")
        theirs = _fresh(body, subset)
        rows.append(("tbparse over the first 100 of those runs (every point into pandas), fresh process",
                     f"{theirs:.1f} s; unitb.runs cold over the same 100: {ours:.2f} s = {theirs / ours:.0f}× "
                     "faster", "reported", "—"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows
