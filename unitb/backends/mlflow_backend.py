"""MLflow as a unitb backend (see :mod:`unitb.backends.forwarder` for the rules).

Scalars become metrics at ``step=`` the event's step, images ``log_image(key=tag, step=)``,
text an artifact ``text/<tag>/step-<step>.md``, the hparams the run's params. MLflow has no
histograms: they stay in TensorBoard. Points are sent with ``log_batch`` (one call per step,
within its limits of 1000 metrics and 100 params). MLflow is imported only when a run uses it.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from unitb.backends.base import Backend, installed, register_backend
from unitb.backends.points import image_of
from unitb.read.run_reader import session_values

EXPERIMENT = "unitb"
METRIC_BATCH, PARAM_BATCH = 1000, 100  # log_batch's limits per call
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for a nested run
PARAM_CHARS = 6000
_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


UI_PORT = 5000  # mlflow ui's own default, named so the address printed beside it matches


def metric_key(tag: str) -> str:
    """MLflow takes letters, digits, ``_ - . /`` and spaces in a key: anything else becomes ``_``."""
    return _KEY.sub("_", tag)


@register_backend
class MlflowBackend(Backend):
    name = "mlflow"
    keywords = ("tracking_uri", "experiment", "run_name", "tags", "artifact_location", "parent_run")
    package = extra = "mlflow"
    in_order = False  # a metric point carries its own step
    options: Dict[str, Any]

    def __init__(self, options: Mapping[str, object], warn: Callable[[str], None]):
        super().__init__(options, warn)
        self.client: Any = None  # mlflow.MlflowClient, once open
        self.run_id: Optional[str] = None
        self.tracking_uri: Optional[str] = None
        self._params: Dict[str, str] = {}
        self._experiment_id: Optional[str] = None  # set for a run nested under a parent_run
        self._created_parent: Optional[str] = None  # a parent run this trial created

    @classmethod
    def in_sweep(cls, options: Mapping[str, object], sweep: str) -> Dict[str, object]:
        """A trial's run goes under a parent run named after the sweep, unless the script chose
        otherwise. (W&B needs nothing here: its runs join the sweep's group through
        ``WANDB_RUN_GROUP``, which the agent sets for any W&B user in the trial, unitb or not.)"""
        return {"parent_run": sweep, **options}

    @classmethod
    def local_options(cls, folder: str, project: str, given: Mapping[str, object]) -> Dict[str, object]:
        """A SQLite store under ``folder``, its images and texts beside it (not in the working
        directory); a given ``tracking_uri`` (a server) replaces both."""
        where = os.path.abspath(folder)
        if given.get("tracking_uri"):
            return {"experiment": project, **given}
        if not installed("sqlalchemy"):
            raise ValueError("the demo's MLflow store is a SQLite file, which mlflow-skinny cannot open: "
                             "pip install 'unitb[mlflow]' (full mlflow), or pass --tracking-uri of a server")
        return {"experiment": project, "tracking_uri": f"sqlite:///{where}/mlflow.db",
                "artifact_location": f"file://{where}/mlflow-artifacts", **given}

    @classmethod
    def where_to_look(cls, options: Mapping[str, object], command: Callable[[str, str], str]) -> Optional[str]:
        """The ``mlflow ui`` command and the address of the experiment's runs (MLflow's UI opens
        on another page)."""
        ui = command("mlflow", "mlflow")
        line = f"MLflow: {ui} ui --backend-store-uri {options['tracking_uri']} --port {UI_PORT}"
        try:
            from mlflow import MlflowClient

            found = MlflowClient(tracking_uri=str(options["tracking_uri"])).get_experiment_by_name(
                str(options.get("experiment") or EXPERIMENT))
        except Exception:
            found = None
        if found is None:
            return line
        return f"{line}, then open http://127.0.0.1:{UI_PORT}/#/experiments/{found.experiment_id}/runs"

    def open(self, state: Dict[str, Any], start_step: int, run_name: str) -> int:
        from mlflow import MlflowClient

        uri = self.options.get("tracking_uri") or state.get("tracking_uri")
        self.client = MlflowClient(tracking_uri=str(uri) if uri else None)
        self.tracking_uri = str(self.client.tracking_uri)
        old = state.get("run_id") if isinstance(state.get("run_id"), str) else None
        sent = int(state.get("sent_step", -1)) if isinstance(state.get("sent_step"), int) else -1
        if old and not self._exists(old):
            self._warn(f"unitb: the MLflow run {old} is not on {uri or 'the default tracking URI'}; "
                       "a new run gets this one")
            old = None
        if old and sent <= start_step:  # nothing after the resume point was sent: go on in the same run
            self.client.update_run(old, status="RUNNING")
            self.run_id = old
            self._params = {k: str(v) for k, v in self.client.get_run(old).data.params.items()}
            return sent
        tags = {key: str(value) for key, value in dict(self.options.get("tags") or {}).items()}
        if old:  # MLflow cannot delete the points sent after start_step: a new run replaces this one
            tags["unitb.replaces"] = old
        experiment_id = self._experiment(str(self.options.get("experiment") or EXPERIMENT))
        parent = self.options.get("parent_run")
        if parent:  # a sweep's trials, nested under one run named after the sweep
            self._experiment_id = experiment_id
            tags[PARENT_TAG] = self._parent(experiment_id, str(parent))
        run = self.client.create_run(experiment_id, run_name=str(self.options.get("run_name") or run_name), tags=tags,
                                     start_time=_ms(self.started_at))
        self.run_id = run.info.run_id
        if old:
            self.client.set_tag(old, "unitb.replaced_by", self.run_id)
            self.client.set_terminated(old, status="KILLED")
            self._warn(f"unitb: the MLflow run {old} holds steps after the resume point {start_step}, which MLflow "
                       f"cannot delete; run {self.run_id} replaces it (steps up to {start_step} sent again)")
        return -1

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``, created if it is new. Runs starting together (a
        sweep's trials) may each try to create it: one does, the others find it."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        # A new experiment's artifacts go where the user said; else MLflow's default, which for a
        # database store is ./mlruns in the working directory.
        location = self.options.get("artifact_location")
        try:
            return self.client.create_experiment(name, artifact_location=str(location) if location else None)
        except Exception:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _oldest_parent(self, experiment_id: str, name: str) -> Optional[str]:
        """The oldest run tagged as the parent ``name`` (every trial orders them the same way,
        ties within a millisecond too)."""
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.`unitb.parent` = '{name}'",
                                       max_results=50)
        return min(((run.info.start_time, run.info.run_id) for run in runs), default=(0, None))[1]

    def _parent(self, experiment_id: str, name: str) -> str:
        """The id of the parent run ``name`` (tagged ``unitb.parent``), created by the first
        trial that needs it. Trials starting together may each create one and, before they see
        each other's, each take its own: :meth:`close` settles on the oldest."""
        existing = self._oldest_parent(experiment_id, name)
        if existing:
            return existing
        mine = self.client.create_run(experiment_id, run_name=name, tags={"unitb.parent": name})
        self.client.set_terminated(mine.info.run_id)
        self._created_parent = mine.info.run_id
        return self._oldest_parent(experiment_id, name) or mine.info.run_id

    def _settle_parent(self) -> None:
        """Long after every trial of a start created its parent: the run goes under the oldest,
        and a parent this trial created that is not the oldest is deleted."""
        name = self.options.get("parent_run")
        if not name or self._experiment_id is None or self.run_id is None:
            return
        chosen = self._oldest_parent(self._experiment_id, str(name))
        if chosen and chosen != self.client.get_run(self.run_id).data.tags.get(PARENT_TAG):
            self.client.set_tag(self.run_id, PARENT_TAG, chosen)
        if self._created_parent and chosen and self._created_parent != chosen:
            self.client.delete_run(self._created_parent)

    def _exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except Exception:
            return False

    def send(self, steps: List[Tuple[int, List[tuple]]]) -> None:
        """All the steps' metrics in as few ``log_batch`` calls as its limits allow: a request per
        step would leave a remote server behind a fast loop."""
        now = int(time.time() * 1000)
        metrics: list = []
        params: list = []
        for step, points in steps:
            for tag, kind, value in points:
                self._convert(step, tag, kind, value, now, metrics, params)
        for start in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + PARAM_BATCH])
        for start in range(0, len(metrics), METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + METRIC_BATCH])

    def _convert(self, step: int, tag: str, kind: str, value: Any, now: int, metrics: list, params: list) -> None:
        """A scalar or hparams record into ``metrics``/``params``; images and text are sent now."""
        from mlflow.entities import Metric, Param

        with self.skipped_on_error(tag, kind):
            if kind == "scalar":
                metrics.append(Metric(metric_key(tag), float(value), now, step))
            elif kind == "hparams":
                for key, item in session_values(value).items():
                    text = str(item)[:PARAM_CHARS]
                    if self._params.get(key) is None:
                        params.append(Param(metric_key(key), text))
                        self._params[key] = text
            elif kind == "image" and value:
                self.client.log_image(self.run_id, np.asarray(image_of(value)), key=metric_key(tag), step=step)
            elif kind == "text" and isinstance(value, str):
                self.client.log_text(self.run_id, value, f"text/{metric_key(tag)}/step-{step:09d}.md")

    def state(self) -> Dict[str, object]:
        return {"run_id": self.run_id, "tracking_uri": self.tracking_uri}

    def close(self) -> None:
        if self.client is not None and self.run_id is not None:
            self._settle_parent()
            self.client.set_terminated(self.run_id, status="FINISHED", end_time=_ms(self.ended_at))


def _ms(seconds: Optional[float]) -> Optional[int]:
    """MLflow's times are milliseconds since the epoch (None: MLflow's now)."""
    return None if seconds is None else int(seconds * 1000)
