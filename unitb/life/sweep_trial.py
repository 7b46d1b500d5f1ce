"""A sweep's trial as its training script sees it: handed over by the agent in the environment.

The agent sets ``UNITB_SWEEP_TRIAL`` to a JSON object — the sweep's id, the trial's number, its
parameters and the run folder it gets — and starts the script. Nothing in the script has to
change: every entry point (the mmengine hook, ``TorchLogger``, ``TFCallback``, ``TFLogger``) puts
the parameters, ``sweep`` and ``trial`` into its hparams, and the three that choose their own
folder write into the trial's. :func:`unitb.sweep_params` gives the parameters to the script
itself, as ``wandb.config`` does (None outside a sweep).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from unitb.files import json_files, storage
from unitb.files.names import TRIAL_NONFINITE, TRIAL_RUNS
from unitb.notices import default_warn

ENV = "UNITB_SWEEP_TRIAL"
LOGDIR_ENV = "UNITB_SWEEP_LOGDIR"  # the trial's folder alone, for scripts and shells
_said: Dict[str, bool] = {}


@dataclass(frozen=True)
class TrialInfo:
    sweep: str
    number: int
    params: Mapping[str, Any] = field(default_factory=dict)
    logdir: Optional[str] = None  # the trial's run folder (``<logdir>/<sweep>/trial-NNN``), or its URL
    local: Optional[str] = None  # the agent's local folder for the trial, where a run's place is noted
    metric: Optional[str] = None  # the sweep's metric: a non-finite value of it is noted for the agent
    arguments: Optional[Mapping[str, Any]] = None  # the values as W&B hands them to a run (groups as dicts)

    def hparams(self) -> Dict[str, Any]:
        """What a trial's runs add to their hparams: the sweep's parameters by name, and which
        sweep and trial this is."""
        return {**dict(self.params), "sweep": self.sweep, "trial": self.number}

    def environment(self) -> Dict[str, str]:
        """The environment variable the agent sets for the trial's process."""
        env = {ENV: json.dumps({"sweep": self.sweep, "trial": self.number, "params": dict(self.params),
                                "logdir": self.logdir, "local": self.local, "metric": self.metric,
                                "arguments": None if self.arguments is None else dict(self.arguments)})}
        if self.logdir:  # for a script that chooses its own folder (``--out $UNITB_SWEEP_LOGDIR``)
            env[LOGDIR_ENV] = self.logdir
        return env

    def _home(self) -> Optional[str]:
        home = self.local or self.logdir
        return None if not home or storage.is_url(home) else os.path.abspath(home)

    def note_nonfinite(self, tag: str, value: float, step: int) -> None:
        """Tell the agent the sweep's metric was NaN or infinite at ``step``: the run writes only
        finite values, so the agent would otherwise judge the trial on an earlier one."""
        home = self._home()
        if tag != self.metric or home is None:
            return
        path = os.path.join(home, TRIAL_NONFINITE)
        if tag not in json_files.read_dict(path):  # the first one is what the agent reports
            json_files.write(path, {tag: [int(step), repr(float(value))]})

    def note_run(self, run_dir: str) -> None:
        """Name the local folder a run of the trial writes, where the agent follows the metric:
        one the entry point chose outside the trial's own (the mmengine hook writes beside
        mmengine's ``vis_data``), or the spool of a run that goes to a store."""
        home = self._home()
        if home is None:
            return
        run_dir = os.path.abspath(run_dir)
        if run_dir == home or run_dir.startswith(home + os.sep):
            return
        path = os.path.join(home, TRIAL_RUNS)
        kept = json_files.read_dict(path).get("runs")
        runs = [str(r) for r in kept] if isinstance(kept, list) else []
        if run_dir not in runs:
            os.makedirs(home, exist_ok=True)
            json_files.write(path, {"runs": [*runs, run_dir]})


def current() -> Optional[TrialInfo]:
    """This process's trial, or None outside a sweep. A malformed handover is said once and
    ignored: the script runs as it would alone."""
    text = os.environ.get(ENV)
    if not text:
        return None
    try:
        data = json.loads(text)
        info = TrialInfo(sweep=str(data["sweep"]), number=int(data["trial"]), params=dict(data.get("params") or {}),
                         logdir=data.get("logdir"), local=data.get("local"), metric=data.get("metric"),
                         arguments=data.get("arguments"))
        for name in ("logdir", "local", "metric"):
            if getattr(info, name) is not None and not isinstance(getattr(info, name), str):
                raise TypeError(f"{name} {getattr(info, name)!r}")
        if info.arguments is not None and not isinstance(info.arguments, dict):
            raise TypeError(f"arguments {info.arguments!r}")
        return info
    except (ValueError, KeyError, TypeError) as exc:
        if not _said.get(text):
            _said[text] = True
            default_warn(f"unitb: {ENV} is not a trial unitb's agent wrote ({type(exc).__name__}: {exc}); this run "
                         "logs as it would outside a sweep")
        return None


def sweep_params() -> Optional[Dict[str, Any]]:
    """The trial's parameters inside a sweep's trial, None outside one: the counterpart of
    ``wandb.config``, shaped as W&B's agent hands them over (``{"lr": 0.01, "optimizer": {"lr":
    0.1}}`` for a nested group; a name with a dot in it stays one key)."""
    info = current()
    if info is None:
        return None
    return dict(info.arguments) if info.arguments is not None else dict(info.params)
