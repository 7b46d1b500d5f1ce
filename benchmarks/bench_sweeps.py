"""Sweeps: what the agent adds between trials, and its work beside a busy trial, journal and
PostgreSQL."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

from bench_common import HERE, Row, met


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
                         met(statistics.median(gaps) <= goal)))

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
                         "each once", met(twice == 0 and len(set(combos)) == size)))
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
                         met(share <= goal) if goal else "—"))

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
                         met(statistics.median(last) <= 1.0) if method == "bayes" else "—"))
    return rows
