"""A sweep's agent: it asks Optuna for a trial, runs the sweep's command as a process of its own,
follows the metric the trial's run writes, and tells Optuna how the trial went.

- A trial's value is the last value of ``metric.name`` it wrote (as W&B's sweeps take it); every
  point is reported to Optuna at its step, so the pruner judges the trial as it trains.
- A pruned trial is stopped with SIGTERM — what a scheduler sends, and what unitb's entry points
  answer by writing out everything queued before the process ends — so its run is kept whole up
  to the prune. A process still alive ``grace_seconds`` later is killed with its children.
- A trial that exits with an error is failed with its exit code and the tail of its stderr; one
  that never writes the metric is failed naming the tags it did write. Either way its run is
  kept and the agent goes on.
- :meth:`Agent.stop` (Ctrl-C) stops the running trial the same way, marks it interrupted and
  queues its parameters again, so the next agent of the sweep runs them first.
- Agents share nothing but the study: a grid's agents take combinations by trial number, and a
  combination or a ``run_cap`` slot taken twice in a race is skipped, never run twice.
- With a database, agents beat Optuna's heartbeat: a trial whose agent died is failed by the next
  agent and runs again as a trial of its own. A database that does not answer is waited for
  (:meth:`Agent._patiently`), the running trial going on, its points kept until it answers.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from unitb.files import json_files
from unitb.files.names import TRIAL_ARGS, TRIAL_STDERR, TRIAL_STDOUT
from unitb.log.sweep_trial import TrialInfo
from unitb.sweep import space
from unitb.sweep.command import command_line, nested
from unitb.sweep.follow import MetricFollower
from unitb.sweep.study import HEARTBEAT_SECONDS, Sweep

PATIENCE_SECONDS = 1800  # how long an agent waits for a database that does not answer
STDERR_TAIL = 2000  # characters of a failed trial's stderr kept with it
# Environment a trial must not inherit: a launcher's W&B service would take the trial's W&B run
# into the launcher's process (and keep it open after the trial ends).
NOT_INHERITED = ("WANDB_SERVICE", "WANDB_RUN_ID", "WANDB_SWEEP_ID")
# User attributes the agent keeps on a trial (read by ``unitb sweep status``).
SKIPPED, INTERRUPTED, ERROR, RUN, VALUES, EXIT_CODE, OUTPUT, RERUN_OF = (
    "unitb.skipped", "unitb.interrupted", "unitb.error", "unitb.run", "unitb.values", "unitb.exit_code", "unitb.output",
    "unitb.rerun_of")


WAIT = "wait"  # Agent.finished: nothing to start now, but the sweep may yet need this agent


class TrialFailed(Exception):
    """The trial's process failed, or never wrote the metric."""


class _Skipped(Exception):
    """A trial created in a race for a combination (or ``run_cap`` slot) another agent took."""


class _Interrupted(Exception):
    """The agent was stopped while the trial ran."""


def counted(trials: List[Any]) -> List[Any]:
    """The trials that count toward the sweep: all but skipped and interrupted ones, and those
    whose agent died and that run again as another trial (Optuna's retry history names them)."""
    retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
    return [t for t in trials if not t.user_attrs.get(SKIPPED) and not t.user_attrs.get(INTERRUPTED)
            and t.number not in retried]


def _combination(params: Dict[str, Any]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted((name, json.dumps(value, sort_keys=True)) for name, value in params.items()))


def child_environment(info: TrialInfo) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env.update(info.environment())
    env["PYTHONUNBUFFERED"] = "1"  # the trial's output reaches its log as it is printed
    env.setdefault("WANDB_RUN_GROUP", info.sweep)  # W&B shows a sweep's trials as one group
    return env


def stderr_tail(path: str, limit: int = STDERR_TAIL) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class Agent:
    """Runs trials of ``sweep`` one after another until ``count`` ran, the sweep is complete,
    or :meth:`stop`. ``say`` gets one line per trial as it ends."""

    def __init__(self, sweep: Sweep, count: Optional[int] = None, *, poll_seconds: float = 0.5,
                 grace_seconds: float = 30.0, say: Callable[[str], None] = print,
                 heartbeat: int = HEARTBEAT_SECONDS, retries: int = 1) -> None:
        if count is not None and count < 1:
            raise ValueError(f"count must be a positive number of trials, got {count}")
        self.sweep = sweep
        self.count = count
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.say = say
        self.heartbeat = heartbeat
        self.retries = retries
        self.ran = 0
        self._stopping = threading.Event()
        self._process: Optional[subprocess.Popen] = None
        self._away = False  # the database did not answer the last call
        self._in_trial = False  # the current optimize() call reached the objective
        self._dims = space.dimensions(sweep.config)
        assert sweep.config.metric is not None  # unitb.sweep.study.create refuses a sweep without one
        self._metric = sweep.config.metric

    def stop(self) -> None:
        """Stop the running trial (SIGTERM, then SIGKILL after ``grace_seconds``) and start no other."""
        self._stopping.set()

    def kill(self) -> None:
        """Stop at once: the running trial and its children are killed (SIGKILL)."""
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            _signal(self._process, signal.SIGKILL, group=True)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # ------------------------------------------------------------------ the loop
    def run(self) -> int:
        """Run trials; returns how many ran (skipped ones not counted)."""
        import optuna

        optuna.logging.set_verbosity(logging.ERROR)  # the agent says how each trial went itself
        # A grid's agents share the sweep's seed; other samplers get one of their own, so two
        # agents never draw the same points.
        study = self.sweep.study(seed=random.SystemRandom().randrange(2 ** 31),
                                 optuna_storage=self.sweep.storage(self.heartbeat, self.retries))
        catch = (TrialFailed, _Skipped, _Interrupted)
        while not self.stopping and (self.count is None or self.ran < self.count):
            reason = self._patiently(lambda: self.finished(study))
            if reason == WAIT:  # the last combinations run elsewhere: one may die and need this agent
                self._stopping.wait(min(self.heartbeat, 5.0))
                continue
            if reason:
                self.say(f"sweep {self.sweep.ident}: {reason}")
                break
            self._in_trial = False
            try:
                study.optimize(self._objective(study), n_trials=1, catch=catch)
            except Exception as exc:
                if self._in_trial or not storage_error(exc):
                    raise
                self._patiently(lambda: study.get_trials(deepcopy=False))  # no trial began: ask again
        return self.ran

    def _patiently(self, call: Callable[[], Any]) -> Any:
        """``call()``, waited for while the sweep's database does not answer: retried with a
        backoff of up to 30 s, for up to :data:`PATIENCE_SECONDS`, said once per outage."""
        delay, waited = 1.0, 0.0
        while True:
            try:
                answer = call()
            except Exception as exc:
                if not storage_error(exc) or waited >= PATIENCE_SECONDS:
                    raise
                self._database_away(exc)
                self._stopping.wait(delay)
                waited += delay
                delay = min(2 * delay, 30.0)
                continue
            self._database_back()
            return answer

    def _database_away(self, exc: BaseException) -> None:
        if not self._away:
            self._away = True
            self.say(f"sweep {self.sweep.ident}: the sweep's database does not answer ({type(exc).__name__}: "
                     f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); running trials go on, and the agent "
                     f"retries for up to {PATIENCE_SECONDS // 60} min")

    def _database_back(self) -> None:
        if self._away:
            self._away = False
            self.say(f"sweep {self.sweep.ident}: the sweep's database answers again")

    def finished(self, study) -> Optional[str]:
        """Why no further trial should start (None while one should; :data:`WAIT` while the only
        work left runs under other agents that may yet die: a database sweep's heartbeat tells)."""
        import optuna
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        with warnings.catch_warnings():  # "experimental" in Optuna's words since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)  # a dead agent's trial fails here and its parameters are queued again
        config = self.sweep.config
        trials = study.get_trials(deepcopy=False)
        taken = counted(trials)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if config.run_cap is not None and len(taken) >= config.run_cap:
            return f"run_cap reached ({config.run_cap} trials)"
        if config.method == "grid" and not waiting and \
                len({_combination(t.params) for t in taken}) >= config.grid_size():
            if self.sweep.in_database and any(t.state == TrialState.RUNNING for t in taken):
                return WAIT
            return f"every combination of the grid ran ({config.grid_size()})"
        target = self._metric.target
        best = [t.value for t in taken if t.state == TrialState.COMPLETE and t.value is not None]
        if target is not None and best:
            reached = max(best) >= target if self._metric.goal == "maximize" else min(best) <= target
            if reached:
                return f"the metric's target {target} is reached"
        return None

    def _objective(self, study) -> Callable[[Any], float]:
        def objective(trial) -> float:
            self._in_trial = True
            values = space.suggest(trial, self._dims)
            self._refuse_extra(study, trial)
            folder = self.sweep.trial_folder(trial.number)
            trial.set_user_attr(RUN, folder)
            trial.set_user_attr(VALUES, values)
            self.ran += 1
            return self._run_trial(trial, values, folder, self.sweep.agent_folder(trial.number))
        return objective

    def _refuse_extra(self, study, trial) -> None:
        """A trial another agent's race made one too many is skipped before anything runs."""
        others = [t for t in counted(study.get_trials(deepcopy=False)) if t.number != trial.number]
        config = self.sweep.config
        extra = None
        if config.run_cap is not None and len(others) >= config.run_cap:
            extra = "run_cap reached"
        elif config.method == "grid" and _combination(trial.params) in {_combination(t.params) for t in others}:
            extra = "its combination ran in another trial"
        if extra:
            trial.set_user_attr(SKIPPED, extra)
            raise _Skipped(extra)

    # ------------------------------------------------------------------ one trial
    def _run_trial(self, trial, values: Dict[str, Any], folder: str, local: str) -> float:
        """Run one trial: its run goes to ``folder`` (a URL for a sweep in a store); the agent's
        own files for it (arguments, output, where its runs are) to the local folder ``local``."""
        import optuna

        os.makedirs(local, exist_ok=True)
        args_file = os.path.join(local, TRIAL_ARGS)
        json_files.write(args_file, nested(values))
        info = TrialInfo(self.sweep.ident, trial.number, values, folder, local)
        words = command_line(self.sweep.config, values, args_file)
        with open(os.path.join(local, TRIAL_STDOUT), "wb") as out, \
                open(os.path.join(local, TRIAL_STDERR), "wb") as err:
            try:
                process = subprocess.Popen(words, env=child_environment(info), stdout=out, stderr=err,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                self._fail(trial, f"could not start {words[0]!r}: {exc}")
        self._process = process
        follower = MetricFollower(local, self._metric.name)
        try:
            last, pruned_at, interrupted = self._follow(trial, process, follower)
        finally:
            self._process = None
        # Waited for: Optuna records the outcome once this returns, so the database must answer.
        self._patiently(lambda: trial.set_user_attr(EXIT_CODE, process.returncode))
        if self.sweep.in_store:
            trial.set_user_attr(OUTPUT, local)  # the host's folder holding the trial's output
        name = f"trial {trial.number} ({_short(values)})"
        if interrupted:
            trial.set_user_attr(INTERRUPTED, True)
            study = trial.study
            study.enqueue_trial(dict(trial.params), user_attrs={RERUN_OF: trial.number})
            self.say(f"{name}: interrupted; its parameters run again when an agent continues the sweep")
            raise _Interrupted()
        if pruned_at is not None:
            self.say(f"{name}: pruned at step {pruned_at} ({self._metric.name} = {last[1]:.6g})" if last else
                     f"{name}: pruned")
            raise optuna.TrialPruned(f"pruned at step {pruned_at}")
        if process.returncode != 0:
            tail = stderr_tail(os.path.join(local, TRIAL_STDERR))
            self._fail(trial, f"exited with code {process.returncode}" + (f"; its stderr ends:\n{tail}" if tail
                                                                            else " and wrote nothing to stderr"))
        if last is None:
            seen = follower.tags_seen()
            self._fail(trial, f"never wrote the metric {self._metric.name!r}; "
                       + (f"its run wrote {len(seen)} tags: {', '.join(seen[:20])}" if seen
                          else f"no event file appeared under {folder}"))
        assert last is not None
        self.say(f"{name}: {self._metric.name} = {last[1]:.6g} at step {last[0]}")
        return last[1]

    def _follow(self, trial, process: subprocess.Popen, follower: MetricFollower
                ) -> Tuple[Optional[Tuple[int, float]], Optional[int], bool]:
        """Report the metric as it comes until the process ends; returns the last point, the step
        a prune stopped the trial at (None if it was not), and whether :meth:`stop` did."""
        last: Optional[Tuple[int, float]] = None
        reported: Set[int] = set()
        pending: List[Tuple[int, float]] = []  # points the database has not taken yet
        pruned_at: Optional[int] = None
        stopped_at: Optional[float] = None
        interrupted = False
        while True:
            exited = process.poll() is not None
            fresh = follower.poll()  # read after the exit check: an exited process's last points are in
            if fresh:
                last = fresh[-1]
            pending += [(step, value) for step, value in fresh if step not in reported and step >= 0]
            judged = self._report(trial, pending, reported, wait=exited)
            if exited:
                return last, pruned_at, interrupted
            if judged and fresh and stopped_at is None and not self._done_by(last) and trial.should_prune():
                pruned_at, stopped_at = last[0] if last else None, time.monotonic()
                _signal(process, signal.SIGTERM)
            if self.stopping and stopped_at is None:
                interrupted, stopped_at = True, time.monotonic()
                _signal(process, signal.SIGTERM)
            if stopped_at is not None and time.monotonic() - stopped_at > self.grace_seconds:
                _signal(process, signal.SIGKILL, group=True)
            try:
                process.wait(self.poll_seconds)  # wakes at the exit: the next trial starts at once
            except subprocess.TimeoutExpired:
                pass

    def _done_by(self, last: Optional[Tuple[int, float]]) -> bool:
        """Whether the trial reached Hyperband's ``max_iter``: it has run as long as any trial
        runs, and no bracket stops it there."""
        hyperband = self.sweep.config.early_terminate
        return bool(last and hyperband and hyperband.max_iter and last[0] >= hyperband.max_iter)

    def _report(self, trial, pending: List[Tuple[int, float]], reported: Set[int], wait: bool) -> bool:
        """Report the ``pending`` points to Optuna; while the database does not answer they stay
        pending (and the trial runs on), unless ``wait``. Returns whether all were taken."""
        while pending:
            step, value = pending[0]
            try:
                if wait:
                    self._patiently(functools.partial(trial.report, value, step))
                else:
                    trial.report(value, step)
                    self._database_back()
            except Exception as exc:
                if wait or not storage_error(exc):
                    raise
                self._database_away(exc)
                return False
            reported.add(step)
            pending.pop(0)
        return True

    def _fail(self, trial, message: str) -> None:
        trial.set_user_attr(ERROR, message)
        self.say(f"trial {trial.number}: failed — {message}")
        raise TrialFailed(message)


def storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the sweep's database did not answer (its driver's or SQLAlchemy's
    errors, Optuna's wrapping of them), not that a call was wrong."""
    import optuna

    if isinstance(exc, optuna.exceptions.StorageInternalError):
        return True
    return type(exc).__module__.split(".")[0] in ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "MySQLdb")


def _signal(process: subprocess.Popen, number: int, group: bool = False) -> None:
    try:
        if group:
            os.killpg(process.pid, number)  # the trial runs in a session of its own: its children too
        else:
            process.send_signal(number)
    except (ProcessLookupError, PermissionError):
        pass


def _short(values: Dict[str, Any]) -> str:
    return ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                     for name, value in values.items())
