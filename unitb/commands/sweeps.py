"""``unitb sweep create | agent | run | status | report``: W&B's sweep workflow on Optuna, offline.

``create`` makes the sweep and prints its id; ``agent`` runs its trials in this process's
terminal (any number of agents, on this machine or any machine that sees the sweep's folder or
database); ``run`` is both for one machine (K agents at once); ``status`` and ``report`` read the
study. While agents run, one progress line says how the sweep stands; Ctrl-C stops the running
trials cleanly (a second Ctrl-C stops at once) and ``unitb sweep agent ID`` continues.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from typing import List, Optional, Set

from unitb.commands.demo import runnable
from unitb.sweep import journal, report, study
from unitb.sweep.agent import Agent, write_summary
from unitb.sweep.config import SweepConfigError, load_raw
from unitb.sweep.status import none_completed, progress, table, trial_rows


class Console:
    """Trial lines printed whole, under one progress line kept at the bottom of a terminal
    (redrawn each second); without a terminal the progress line is printed when it changes."""

    def __init__(self, sweep: study.Sweep, stream=None) -> None:
        self.sweep = sweep
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._lock = threading.Lock()
        self._line = ""
        self._said: Set[str] = set()
        self._stop = threading.Event()
        self._study = None

    def say(self, text: str) -> None:
        with self._lock:
            if text in self._said:  # agents ending together say why once
                return
            self._said.add(text)
            self._clear()
            print(text, file=self.stream, flush=True)
            self._draw()

    def refresh(self) -> None:
        metric = self.sweep.config.metric
        assert metric is not None
        try:
            if self._study is None:
                self._study = self.sweep.study()
            line = progress(self._study, self.sweep.ident, metric.name, metric.goal)
        except Exception:  # the storage busy or gone for a moment: keep the last line
            return
        with self._lock:
            if line != self._line:
                self._clear()
                self._line = line
                if self.live:
                    self._draw()
                else:
                    print(line, file=self.stream, flush=True)

    def follow(self) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(1.0):
                self.refresh()
        thread = threading.Thread(target=loop, name="unitb-sweep-progress", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self._stop.set()
        self.refresh()
        with self._lock:
            if self.live and self._line:
                print(file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live and self._line:
            self.stream.write("\r\033[K")

    def _draw(self) -> None:
        if self.live and self._line:
            self.stream.write(self._line)
            self.stream.flush()


def _agents(sweep: study.Sweep, agents: int, count: Optional[int], heartbeat: int = study.HEARTBEAT_SECONDS,
            retries: int = 1) -> int:
    """Run ``agents`` agents at once (threads: the trials are processes) until they end or Ctrl-C."""
    console = Console(sweep)
    running = [Agent(sweep, count, say=console.say, heartbeat=heartbeat, retries=retries, summarize=False)
               for _ in range(agents)]
    errors: List[BaseException] = []

    def work(agent: Agent) -> None:
        try:
            agent.run()
        except BaseException as exc:  # said below; the other agents go on
            errors.append(exc)
            console.say(f"unitb sweep: an agent stopped ({type(exc).__name__}: {exc})")

    threads = [threading.Thread(target=work, args=(agent,), name=f"unitb-agent-{i}") for i, agent in enumerate(running)]
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(_number, _frame) -> None:
        console.say("unitb sweep: stopping the running trials (Ctrl-C again to stop at once)")
        for agent in running:
            agent.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, interrupted)
    console.follow()
    try:
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except KeyboardInterrupt:  # the second Ctrl-C
            for agent in running:
                agent.kill()
            for thread in threads:
                thread.join(10.0)
    finally:
        signal.signal(signal.SIGINT, previous)
        console.close()
    if any(agent.ran for agent in running):
        write_summary(sweep, console.say)  # once for the agents of this process
    finished = sweep.study()
    failed = none_completed(finished)
    _summary(sweep, finished, look=failed is None)
    if any(agent.stopping for agent in running):
        print(f"unitb sweep: stopped; continue with: {sweep.agent_command()}")
        return 130
    if failed:  # a sweep with nothing to show says so, and a script or CI sees it in the exit code
        print(f"unitb sweep: {failed}", file=sys.stderr)
        return 1
    return 1 if errors else 0


def _summary(sweep: study.Sweep, finished, look: bool) -> None:
    """The table of trials, and (``look``: a trial completed) how to look at them; the agents
    wrote the HPARAMS summary."""
    metric = sweep.config.metric
    assert metric is not None
    shared = [p.name for p in sweep.config.parameters]
    print(table(trial_rows(finished, metric.goal), metric.name))
    if not look:
        return
    tensorboard = runnable("tensorboard", "tensorboard.main")
    if sweep.in_store:
        local = os.path.join(study.DEFAULT_LOGDIR, sweep.ident)
        names = " ".join(f"--shared {name}" for name in shared)
        print(f"Look at them: unitb pull {sweep.folder} {local} && unitb hparams {local} {names} --metric "
              f"{metric.name} && {tensorboard} --logdir {local}")
    else:
        print(f"Look at them: {tensorboard} --logdir {shlex.quote(sweep.folder)}")


def _find(args: argparse.Namespace) -> study.Sweep:
    return study.find(args.sweep, args.logdir, args.storage)


def _said(sweep: study.Sweep) -> study.Sweep:
    """The configuration's notes (what W&B's format has and means nothing here), said once at create."""
    for note in sweep.config.notes:
        print(f"unitb sweep: {note}", file=sys.stderr)
    return sweep


def cmd_create(args: argparse.Namespace) -> int:
    sweep = _said(study.create(load_raw(args.config), name=args.name, logdir=args.logdir, database=args.storage))
    print(sweep.ident)
    print(f"unitb sweep: created {sweep.folder} ({sweep.config.method}"
          + (f", {sweep.config.grid_size()} combinations" if sweep.config.method == "grid" else "")
          + f"); start agents with: {sweep.agent_command()}", file=sys.stderr)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    return _agents(_find(args), 1, args.count, args.heartbeat, args.retries)


def cmd_run(args: argparse.Namespace) -> int:
    if args.agents < 1:
        print("unitb sweep run: --agents must be at least 1", file=sys.stderr)
        return 2
    sweep = _said(study.create(load_raw(args.config), name=args.name, logdir=args.logdir, database=args.storage))
    print(f"unitb sweep: {sweep.ident} in {sweep.folder}, {args.agents} agent(s)", file=sys.stderr)
    return _agents(sweep, args.agents, args.count, args.heartbeat, args.retries)


def cmd_status(args: argparse.Namespace) -> int:
    sweep = _find(args)
    metric = sweep.config.metric
    assert metric is not None
    s = sweep.study()
    print(progress(s, sweep.ident, metric.name, metric.goal))
    print(table(trial_rows(s, metric.goal), metric.name))
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    path = study.journal_path(args.sweep, args.logdir)
    kept = journal.repair_locked(path)
    if not kept:
        print(f"unitb sweep repair: {path} holds only whole records; nothing to do")
        return 0
    for copy in kept:
        print(f"unitb sweep repair: set aside {copy}")
    where = f" --logdir {args.logdir}" if args.logdir != study.DEFAULT_LOGDIR else ""
    print(f"unitb sweep repair: {path} now holds only whole records; check the trials with "
          f"unitb sweep status {args.sweep}{where}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    out = report.write(_find(args), args.out)
    print(f"unitb sweep: wrote {out}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run a ``unitb sweep`` verb; a configuration or id it cannot use is one line, exit 2."""
    verbs = {"create": cmd_create, "agent": cmd_agent, "run": cmd_run, "status": cmd_status, "report": cmd_report,
             "repair": cmd_repair}
    try:
        return int(verbs[args.verb](args))
    except (SweepConfigError, study.SweepNotFound, FileExistsError, ValueError, OSError) as exc:
        print(f"unitb sweep {args.verb}: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"unitb sweep {args.verb}: {exc.name or exc} is not installed: pip install \"unitb[sweep]\"",
              file=sys.stderr)
        return 2
