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
- A trial whose agent died is failed by the next agent that looks, and runs again as a trial of
  its own (:mod:`unitb.sweep.liveness`: at once on the same host, after three missed heartbeats
  from another). The trial's process ends with its agent (:mod:`unitb.sweep.tether`). A sweep
  is never done while a trial it counts still runs: its agent may yet die.
- A database that does not answer is waited for (:meth:`Agent._patiently`), the running trial
  going on, its points kept until it answers. Nobody could beat meanwhile, so an agent that saw
  the database away takes no trial for dead until every agent had time to beat again.
- A trial another agent failed anyway (taken for dead) runs on: its run is kept beside the
  retry's, what it did is kept with the sweep, and its agent goes on to the next trial.
- A metric that becomes NaN or infinite stops the trial (as a prune does) and fails it, naming
  the step: such a trial is never ranked.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import signal
import subprocess
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from unitb.files import json_files
from unitb.files.names import TRIAL_ARGS, TRIAL_NONFINITE, TRIAL_STDERR, TRIAL_STDOUT
from unitb.life.sweep_trial import TrialInfo
from unitb.sweep import liveness, space, trial_state
from unitb.sweep.command import command_line
from unitb.sweep.follow import MetricFollower
from unitb.sweep.study import GRACE_BEATS, HEARTBEAT_SECONDS, Sweep, retry_elsewhere
from unitb.sweep.tether import tethered

PATIENCE_SECONDS = 1800  # how long an agent waits for a database that does not answer
STDERR_TAIL = 2000  # characters of a failed trial's stderr kept with it
# Environment a trial must not inherit: a launcher's W&B service would take the trial's W&B run
# into the launcher's process (and keep it open after the trial ends).
NOT_INHERITED = ("WANDB_SERVICE", "WANDB_RUN_ID", "WANDB_SWEEP_ID")
# User attributes the agent keeps on a trial (read by ``unitb sweep status``).
SKIPPED, INTERRUPTED, ERROR, RUN, VALUES, EXIT_CODE, OUTPUT, RERUN_OF = (
    "unitb.skipped", "unitb.interrupted", "unitb.error", "unitb.run", "unitb.values", "unitb.exit_code", "unitb.output",
    "unitb.rerun_of")
# Study user attribute prefix: what a trial did after another agent failed it (``LATE + "7"``).
LATE = "unitb.late."


WAIT = "wait"  # Agent.finished: nothing to start now, but the sweep may yet need this agent


class TrialFailed(Exception):
    """The trial's process failed, or never wrote the metric."""


class _Skipped(Exception):
    """A trial created in a race for a combination (or ``run_cap`` slot) another agent took."""


class _Interrupted(Exception):
    """The agent was stopped while the trial ran."""


class _TakenForDead(Exception):
    """Another agent failed the trial while it ran (a database outage made it look dead)."""


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


def write_summary(sweep: Sweep, say: Callable[[str], None]) -> None:
    """The sweep's HPARAMS table, brought up to date with the trials run; a failure is one line."""
    try:
        sweep.write_summary()
    except Exception as exc:
        say(f"unitb sweep: could not write the HPARAMS summary of {sweep.folder} ({type(exc).__name__}: {exc})")


class Agent:
    """Runs trials of ``sweep`` one after another until ``count`` ran, the sweep is complete,
    or :meth:`stop`. ``say`` gets one line per trial as it ends. ``summarize``: write the sweep's
    HPARAMS summary at the end (agents run together in one process leave it to their runner, which
    writes it once)."""

    def __init__(self, sweep: Sweep, count: Optional[int] = None, *, poll_seconds: float = 0.5,
                 grace_seconds: float = 30.0, say: Callable[[str], None] = print,
                 heartbeat: int = HEARTBEAT_SECONDS, retries: int = 1, summarize: bool = True) -> None:
        if count is not None and count < 1:
            raise ValueError(f"count must be a positive number of trials, got {count}")
        self.sweep = sweep
        self.count = count
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.say = say
        self.heartbeat = heartbeat
        self.retries = retries
        self.summarize = summarize
        self.ran = 0
        self._stopping = threading.Event()
        self._process: Optional[subprocess.Popen] = None
        self._away = False  # the database did not answer the last call
        self._back_at: Optional[float] = None  # when it answered again (monotonic)
        self._in_trial = False  # the current optimize() call reached the objective
        self._taken = False  # another agent failed the running trial
        self._storage: Any = None
        self._beats = liveness.BeatWatch(self.dead_after)
        self._dims = space.dimensions(sweep.config)
        assert sweep.config.metric is not None  # unitb.sweep.study.create refuses a sweep without one
        self._metric = sweep.config.metric

    @property
    def dead_after(self) -> float:
        """Seconds without a beat after which an agent on another host is taken for dead."""
        return float(max(GRACE_BEATS * self.heartbeat, 2))

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
        self._storage = self.sweep.storage(self.heartbeat, self.retries)
        if hasattr(self._storage, "holds_stale"):  # a database: its stale check waits out an outage too
            self._storage.holds_stale = self._just_back
        study = self.sweep.study(seed=random.SystemRandom().randrange(2 ** 31), optuna_storage=self._storage)
        catch = (TrialFailed, _Skipped, _Interrupted, _TakenForDead)
        while not self.stopping and (self.count is None or self.ran < self.count):
            reason = self._patiently(lambda: self.finished(study))
            if reason == WAIT:  # the last trials run elsewhere: one may die and need this agent
                self._stopping.wait(min(self.heartbeat, 5.0))
                continue
            if reason:
                self.say(f"sweep {self.sweep.ident}: {reason}")
                break
            self._in_trial = self._taken = False
            try:
                study.optimize(self._objective(study), n_trials=1, catch=catch)
            except Exception as exc:
                if self._taken:  # Optuna cannot record an outcome for a trial already failed
                    continue
                if self._in_trial or not storage_error(exc):
                    raise
                self._patiently(lambda: study.get_trials(deepcopy=False))  # no trial began: ask again
        if self.summarize and self.ran:
            write_summary(self.sweep, self.say)
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
            self._back_at = time.monotonic()
            self._beats.restart()
            self.say(f"sweep {self.sweep.ident}: the sweep's database answers again")

    def _just_back(self) -> bool:
        """Whether the database is only now answering again (this call is the first since it was
        away), or came back so recently that other agents may not have beaten yet."""
        return self._away or (self._back_at is not None
                              and time.monotonic() - self._back_at < self.dead_after + self.heartbeat)

    def finished(self, study) -> Optional[str]:
        """Why no further trial should start (None while one should; :data:`WAIT` while the only
        work left runs under other agents, which may yet die and leave it to this one)."""
        from optuna.trial import TrialState

        self.fail_dead_agents(study)
        config = self.sweep.config
        trials = study.get_trials(deepcopy=False)
        taken = counted(trials)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        running = any(t.state == TrialState.RUNNING for t in taken)
        target = self._metric.target
        best = [t.value for t in taken if t.state == TrialState.COMPLETE and t.value is not None]
        if target is not None and best:
            reached = max(best) >= target if self._metric.goal == "maximize" else min(best) <= target
            if reached:
                return f"the metric's target {target} is reached"
        done = None
        if config.run_cap is not None and len(taken) >= config.run_cap:
            done = f"run_cap reached ({config.run_cap} trials)"
        elif config.method == "grid" and not waiting and \
                len({_combination(t.params) for t in taken}) >= config.grid_size():
            done = f"every combination of the grid ran ({config.grid_size()})"
        if done and running:
            return WAIT
        return done

    def fail_dead_agents(self, study) -> None:
        """Fail each running trial whose agent died, and queue its parameters again: Optuna's
        heartbeat in a database, and for every storage an agent on this host that no longer
        runs, or (a journal, which has no heartbeat) one elsewhere whose beat stopped."""
        import optuna
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        if self._just_back():
            return
        if self.sweep.in_database:
            with warnings.catch_warnings():  # "experimental" in Optuna's words since 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                fail_stale_trials(study)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            who = trial.system_attrs.get(liveness.AGENT_ATTR)
            if isinstance(who, dict) and liveness.on_this_host(who):
                if liveness.alive(who):
                    continue
                reason = f"its agent ({liveness.describe(who)}) died; the trial's process was stopped with it"
            elif self.sweep.in_database:
                continue  # Optuna's heartbeat tells
            elif self._beats.stale(trial._trial_id, trial.system_attrs.get(liveness.BEAT_ATTR)):
                reason = (f"its agent ({liveness.describe(who) if isinstance(who, dict) else 'unknown'}) has not "
                          f"beaten for {self.dead_after:g} s: the host or the agent died")
            else:
                continue
            self._fail_dead(study, trial, reason)

    def _fail_dead(self, study, trial, reason: str) -> None:
        import optuna
        from optuna.trial import TrialState

        storage = study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, ERROR, reason)
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                return
        except (optuna.exceptions.UpdateFinishedTrialError, KeyError):
            return  # it ended, or another agent failed it first
        retry_elsewhere(self.retries)(study, storage.get_trial(trial._trial_id))
        self.say(f"trial {trial.number}: failed — {reason}; its parameters run again")

    def _objective(self, study) -> Callable[[Any], float]:
        def objective(trial) -> float:
            self._in_trial = True
            self._storage.set_trial_system_attr(trial._trial_id, liveness.AGENT_ATTR, liveness.mark())
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
        arguments = self.sweep.config.arguments(values)
        json_files.write(args_file, arguments)
        info = TrialInfo(self.sweep.ident, trial.number, values, folder, local, self._metric.name, arguments)
        words = command_line(self.sweep.config, values, args_file)
        with open(os.path.join(local, TRIAL_STDOUT), "wb") as out, \
                open(os.path.join(local, TRIAL_STDERR), "wb") as err:
            try:
                process = subprocess.Popen(words, env=child_environment(info), stdout=out, stderr=err,
                                           stdin=subprocess.DEVNULL, start_new_session=True,
                                           preexec_fn=tethered())
            except OSError as exc:
                self._fail(trial, f"could not start {words[0]!r}: {exc}")
        self._process = process
        follower = MetricFollower(local, self._metric.name)
        try:
            outcome = self._follow(trial, process, follower)
        finally:
            self._process = None
        last = outcome.last
        name = f"trial {trial.number} ({_short(values)})"
        if self._taken or self._finished_elsewhere(trial):
            self._record_late(trial, name, outcome, process.returncode)
        # Waited for: Optuna records the outcome once this returns, so the database must answer.
        self._patiently(lambda: trial.set_user_attr(EXIT_CODE, process.returncode))
        if self.sweep.in_store:
            trial.set_user_attr(OUTPUT, local)  # the host's folder holding the trial's output
        if outcome.interrupted:
            trial.set_user_attr(INTERRUPTED, True)
            study = trial.study
            study.enqueue_trial(dict(trial.params), user_attrs={RERUN_OF: trial.number})
            self.say(f"{name}: interrupted; its parameters run again when an agent continues the sweep")
            raise _Interrupted()
        if outcome.nonfinite is not None:
            step, value = outcome.nonfinite
            self._fail(trial, f"{self._metric.name} was {_number(value)} at step {step}; the trial was stopped there")
        if outcome.pruned is not None:
            step, value = outcome.pruned
            self.say(f"{name}: pruned at step {step} ({self._metric.name} = {value:.6g})")
            if follower.run_folder is not None and not self.sweep.in_store:
                trial_state.mark_pruned(follower.run_folder, step, self.say)
            raise optuna.TrialPruned(f"pruned at step {step}")
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

    def _finished_elsewhere(self, trial) -> bool:
        state = self._patiently(lambda: self._storage.get_trial(trial._trial_id).state)
        self._taken = self._taken or state.is_finished()
        return self._taken

    def _record_late(self, trial, name: str, outcome: "_Outcome", returncode: Optional[int]) -> None:
        """What a trial another agent failed went on to do, kept with the sweep (the trial itself
        can no longer be changed); then on to the next trial."""
        last = outcome.last
        if outcome.nonfinite is not None:
            did = f"{self._metric.name} was {_number(outcome.nonfinite[1])} at step {outcome.nonfinite[0]}"
        elif outcome.interrupted:
            did = "it was interrupted"
        elif outcome.pruned is not None:
            did = f"it was pruned at step {outcome.pruned[0]}"
        elif returncode != 0:
            did = f"it exited with code {returncode}"
        elif last is None:
            did = f"it never wrote {self._metric.name}"
        else:
            did = f"it completed: {self._metric.name} = {last[1]:.6g} at step {last[0]}"
        record = {"outcome": did, "exit_code": returncode, "step": last[0] if last else None,
                  "value": last[1] if last else None}
        self._patiently(lambda: trial.study.set_user_attr(f"{LATE}{trial.number}", record))
        self.say(f"{name}: another agent took it for dead and ran its parameters again; it went on and {did}; "
                 "both runs are kept")
        raise _TakenForDead(did)

    def _follow(self, trial, process: subprocess.Popen, follower: MetricFollower) -> "_Outcome":
        """Report the metric as it comes until the process ends; a prune, :meth:`stop` or a
        non-finite metric stop the trial on the way."""
        outcome = _Outcome()
        reported: Set[int] = set()
        pending: List[Tuple[int, float]] = []  # points the database has not taken yet
        stopped_at: Optional[float] = None
        beat, beaten_at = 0, time.monotonic()
        while True:
            exited = process.poll() is not None
            fresh = follower.poll()  # read after the exit check: an exited process's last points are in
            if outcome.nonfinite is None:
                outcome.nonfinite = next(((step, value) for step, value in fresh if not math.isfinite(value)),
                                         None) or _dropped(follower.folder, self._metric.name)
            if outcome.nonfinite is not None:  # nothing from the first non-finite point on is reported
                fresh = [(step, value) for step, value in fresh
                         if math.isfinite(value) and step < outcome.nonfinite[0]]
            if fresh:
                outcome.last = fresh[-1]
            if outcome.pruned is None:  # a pruned trial's curve in the study ends at its prune
                pending += [(step, value) for step, value in fresh if step not in reported and step >= 0]
            # A trial that ran to its end completes: a prune found in its last points only
            # records where it stood at each rung, for the trials that come after it.
            pruned = self._report(trial, pending, reported, wait=exited, judge=stopped_at is None)
            if exited:
                return outcome
            if outcome.nonfinite is not None and stopped_at is None:
                stopped_at = time.monotonic()
                _signal(process, signal.SIGTERM)
            if pruned is not None and stopped_at is None:
                outcome.pruned, stopped_at = pruned, time.monotonic()
                _signal(process, signal.SIGTERM)
            if self.stopping and stopped_at is None:
                outcome.interrupted, stopped_at = True, time.monotonic()
                _signal(process, signal.SIGTERM)
            if stopped_at is not None and time.monotonic() - stopped_at > self.grace_seconds:
                _signal(process, signal.SIGKILL, group=True)
            if not self.sweep.in_database and time.monotonic() - beaten_at >= self.heartbeat:
                beat, beaten_at = beat + 1, time.monotonic()
                self._beat(trial, beat)
            try:
                process.wait(self.poll_seconds)  # wakes at the exit: the next trial starts at once
            except subprocess.TimeoutExpired:
                pass

    def _beat(self, trial, beat: int) -> None:
        """The journal's heartbeat: a counter the agents on other hosts watch move."""
        import optuna

        try:
            self._storage.set_trial_system_attr(trial._trial_id, liveness.BEAT_ATTR, beat)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._taken = True

    def _done_by(self, step: int) -> bool:
        """Whether a point at ``step`` reached Hyperband's ``max_iter``: the trial has run as long
        as any trial runs, and no bracket stops it there."""
        hyperband = self.sweep.config.early_terminate
        return bool(hyperband and hyperband.max_iter and step >= hyperband.max_iter)

    def _report(self, trial, pending: List[Tuple[int, float]], reported: Set[int], wait: bool,
                judge: bool = False) -> Optional[Tuple[int, float]]:
        """Report the ``pending`` points to Optuna; while the database does not answer they stay
        pending (and the trial runs on), unless ``wait``. A trial another agent failed takes no
        more points: they stay in its run.

        With ``judge`` the pruner judges the trial after each point, as if the agent had read each
        the moment it was written: how often the agent reads the run (a busy machine reads it
        late, many points at once) never changes which trials stop. Returns the point the first
        prune came at; a running trial's curve in the study ends there (its run keeps the rest)."""
        import optuna

        pruned: Optional[Tuple[int, float]] = None
        while pending and not self._taken:
            step, value = pending[0]
            try:
                if wait:
                    self._patiently(functools.partial(trial.report, value, step))
                else:
                    trial.report(value, step)
                    self._database_back()
            except optuna.exceptions.UpdateFinishedTrialError:
                self._taken = True
                break
            except Exception as exc:
                if wait or not storage_error(exc):
                    raise
                self._database_away(exc)
                return pruned
            reported.add(step)
            pending.pop(0)
            if judge and pruned is None and not self._done_by(step) and self._prunes(trial):
                pruned = step, value
                if not wait:  # the trial's curve in the study ends where it was judged (its run keeps the rest)
                    pending.clear()
                    break
        if self._taken:
            pending.clear()
        return pruned

    def _prunes(self, trial) -> bool:
        """The pruner's word on the trial; a database away says no (the trial runs on)."""
        try:
            return trial.should_prune()
        except Exception as exc:
            if not storage_error(exc):
                raise
            self._database_away(exc)
            return False

    def _fail(self, trial, message: str) -> None:
        trial.set_user_attr(ERROR, message)
        self.say(f"trial {trial.number}: failed — {message}")
        raise TrialFailed(message)


class _Outcome:
    """How a trial's process went, as its agent followed it."""

    def __init__(self) -> None:
        self.last: Optional[Tuple[int, float]] = None  # the metric's last (step, value)
        self.pruned: Optional[Tuple[int, float]] = None  # the point the pruner stopped the trial at
        self.interrupted = False
        self.nonfinite: Optional[Tuple[int, float]] = None  # the first non-finite metric point


def _dropped(folder: str, metric: str) -> Optional[Tuple[int, float]]:
    """The first non-finite value of ``metric`` a unitb entry point left out of the trial's run
    (it writes only finite values) and noted in the trial's folder for the agent."""
    path = os.path.join(folder, TRIAL_NONFINITE)
    if not os.path.exists(path):
        return None
    seen = json_files.read_dict(path).get(metric)
    if not isinstance(seen, list) or len(seen) != 2:
        return None
    try:
        return int(seen[0]), float(seen[1])
    except (TypeError, ValueError):
        return None


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinite" if value > 0 else "-infinite"
    return f"{value:.6g}"


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
