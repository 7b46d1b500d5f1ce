"""What W&B (offline) and MLflow (a real tracking server on loopback) received, read back
from the files and server they wrote to: no mocks of either library."""
from __future__ import annotations

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Tuple

def _wandb_records(path: str) -> Iterator[bytes]:
    """The records of a W&B transaction log (its framing is read in one place:
    :func:`unitb.backends.wandb_backend.log_records`; the records are parsed here, independently)."""
    from unitb.backends.wandb_backend import log_records

    return log_records(path)


class WandbRun:
    """One offline W&B run file: its history rows, config and resume/rewind markers."""

    def __init__(self, path: str):
        from wandb.proto import wandb_internal_pb2

        self.path = path
        self.run_id = ""
        self.history: List[Dict[str, object]] = []
        self.config: Dict[str, object] = {}
        self.resume = ""
        self.branch_point = None
        self.started = 0
        self.group = ""
        for data in _wandb_records(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self.run_id = record.run.run_id
                self.started = record.run.start_time.ToNanoseconds()
                self.resume = record.run.resume
                self.group = record.run.run_group
                for item in record.run.config.update:
                    self.config[item.key] = json.loads(item.value_json)
                if record.run.HasField("branch_point"):
                    self.branch_point = (record.run.branch_point.run, record.run.branch_point.value)
            elif kind == "config":
                for item in record.config.update:
                    self.config[item.key] = json.loads(item.value_json)
            elif kind == "history":
                row: Dict[str, object] = {}
                for item in record.history.item:
                    key = item.key or "/".join(item.nested_key)
                    row[key] = json.loads(item.value_json)
                self.history.append(row)

    def scalars(self) -> Dict[str, List[Tuple[int, float]]]:
        out: Dict[str, List[Tuple[int, float]]] = {}
        for row in self.history:
            media = {key[: -len("/_type")] for key in row if key.endswith("/_type")}
            for key, value in row.items():
                if key.rpartition("/")[0] in media:
                    continue  # a field of an image / histogram / html value
                if not key.startswith("_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.setdefault(key, []).append((int(row["_step"]), float(value)))
        return out

    def kinds(self) -> Dict[str, str]:
        """tag -> W&B media type (image-file, histogram, html) of the media values."""
        out = {}
        for row in self.history:
            for key, value in row.items():
                if key.endswith("/_type"):
                    out[key[: -len("/_type")]] = value
                elif isinstance(value, dict) and "_type" in value:
                    out[key] = value["_type"]
        return out


def wandb_runs(folder: str) -> List[WandbRun]:
    """Every offline run under ``folder``/wandb, oldest first (by start time: folder names of
    runs started in the same second do not sort in start order)."""
    runs = [WandbRun(p) for p in glob.glob(os.path.join(folder, "wandb", "offline-run-*", "run-*.wandb"))]
    return sorted(runs, key=lambda run: run.started)


class MlflowServer:
    """``mlflow server`` with a SQLite store in a temporary folder, on a free loopback port."""

    def __init__(self, folder: str):
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self, timeout: float = 120.0) -> "MlflowServer":
        import urllib.request

        mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
        command = [mlflow if os.path.exists(mlflow) else "mlflow", "server", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", "1",
                   "--backend-store-uri", f"sqlite:///{self.folder}/mlflow.db",
                   "--default-artifact-root", os.path.join(self.folder, "artifacts")]
        self.log = open(os.path.join(self.folder, "server.log"), "wb")
        # Its own process group: the server starts uvicorn and job consumers, all stopped together.
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {open(self.log.name).read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("mlflow server did not answer within the timeout")

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def history(self, run_id: str) -> Dict[str, List[Tuple[int, float]]]:
        client = self.client()
        keys = client.get_run(run_id).data.metrics.keys()
        return {key: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key),
                                                        key=lambda m: (m.step, m.timestamp))] for key in keys}
