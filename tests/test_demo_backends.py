"""`unitb demo --backends wandb,mlflow` as a newcomer runs it: with the extras installed the three
runs reach W&B (offline) and a SQLite MLflow store; with a package missing, one error names every
missing package before anything is trained or created."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from backend_stores import wandb_runs

pytest.importorskip("wandb")
pytest.importorskip("mlflow")


def _demo(out, *args, blocked=(), env=None):
    """``unitb demo`` in a fresh interpreter; ``blocked``: packages made unimportable there."""
    code = ("import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked)
            + "from unitb.commands.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, "demo", "--out", str(out), *args], capture_output=True,
                          text=True, timeout=900, env={**os.environ, **(env or {})})


def test_missing_backend_packages_are_named_at_once_before_anything_is_made(tmp_path):
    out = tmp_path / "runs"
    done = _demo(out, "--backends", "wandb,mlflow", blocked=("wandb", "mlflow"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "wandb, mlflow" in done.stderr and "pip install 'unitb[wandb,mlflow]'" in done.stderr
    assert "[1/3]" not in done.stdout and not out.exists()  # nothing trained, no empty folder left
    skinny = _demo(out, "--backends", "mlflow", blocked=("sqlalchemy",))  # mlflow-skinny: no SQLite store
    assert skinny.returncode == 2 and "pip install 'unitb[mlflow]'" in skinny.stderr and not out.exists()


def test_the_demo_reaches_wandb_offline_and_a_sqlite_mlflow_store(tmp_path):
    out = tmp_path / "runs"
    env = {key: value for key, value in os.environ.items() if not key.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    done = subprocess.run([sys.executable, "-m", "unitb", "demo", "--out", str(out), "--steps", "8", "--backends",
                           "wandb,mlflow"], capture_output=True, text=True, timeout=900, env=env, cwd=str(tmp_path))
    assert not (tmp_path / "mlruns").exists()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "could not open" not in done.stderr
    runs = wandb_runs(str(out))
    assert len(runs) == 3 and all(run.scalars().get("train/loss") for run in runs)
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{out}/mlflow.db")
    experiment = client.get_experiment_by_name("unitb-demo")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 3
    assert all(client.get_metric_history(run.info.run_id, "train/loss") for run in found)
    assert (f"ui --backend-store-uri sqlite:///{out}/mlflow.db --port 5000, then open "
            f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs") in done.stdout
    assert (out / "mlflow-artifacts").is_dir()  # not ./mlruns in the working directory
