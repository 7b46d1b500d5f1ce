"""unitb benchmarks: ratios measured side by side in one process, interleaved trials.

    python benchmarks/run.py            # full run (a few minutes on 2 cores), writes benchmarks/RESULTS.md
    python benchmarks/run.py --quick    # smoke run (what CI executes; times are not asserted)
    python benchmarks/run.py --only reading sweep    # some suites

Each comparison runs its variants in turn, trial after trial, in a rotating order (A B C,
B C A, C A B, ...), so machine noise and position effects hit all of them alike; the figure is the
median over trials, with the spread (min-max of the per-trial ratios) beside it. Each suite is a
module of its own (``bench_*.py``), with what they share in ``bench_common.py``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Callable, Dict, List, Sequence

from bench_common import HERE, Row
from bench_backends import bench_backends
from bench_own_values import bench_own_values
from bench_query import bench_query
from bench_reading import bench_logdir, bench_reading
from bench_records import bench_memory, bench_records
from bench_startup import bench_keras_startup, bench_torch_start
from bench_store import bench_store
from bench_sweeps import bench_sweep
from bench_system import bench_system
from bench_training import bench_grad_norm, bench_keras, bench_keras_refit, bench_mmengine

# The suites, by the name --only takes, in the order a full run measures them.
SUITES: Dict[str, Callable[[bool], List[Row]]] = {
    "grad": bench_grad_norm, "records": bench_records, "memory": bench_memory, "reading": bench_reading,
    "mmengine": bench_mmengine, "keras": bench_keras, "keras-startup": bench_keras_startup, "store": bench_store,
    "torch-start": bench_torch_start, "backends": bench_backends, "sweep": bench_sweep,
    "own-values": bench_own_values, "logdir": bench_logdir, "keras-refit": bench_keras_refit,
    "system": bench_system, "query": bench_query}


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one trial: a smoke run")
    parser.add_argument("--only", nargs="*", choices=list(SUITES))
    parser.add_argument("--out", help="also write the table here (default: benchmarks/RESULTS.md for full runs)")
    args = parser.parse_args(argv)
    rows: List[Row] = []
    for name, fn in SUITES.items():
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
