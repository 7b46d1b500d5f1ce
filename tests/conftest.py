"""Shared fixtures: real writers, real event files, the example models."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


@pytest.fixture
def no_unitb_warnings():
    from unitb import UnitbWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitbWarning)
        yield


@pytest.fixture(scope="session")
def moto_store():
    """One real moto S3 server for the session; tests set its env with :func:`s3_env`."""
    from s3_store import MotoStore

    store = MotoStore().start()
    yield store
    store.stop()


@pytest.fixture
def s3_env(moto_store, monkeypatch, tmp_path):
    """Point boto/s3fs at the moto server, give this test its own bucket and spool folder."""
    import uuid

    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps file systems by arguments, not by endpoint
    for key, value in moto_store.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("UNITB_SPOOL", str(tmp_path / "spool"))
    bucket = moto_store.make_bucket(f"unitb-{uuid.uuid4().hex[:12]}")
    return bucket


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real MLflow tracking server (SQLite store) on loopback for the session."""
    pytest.importorskip("mlflow")
    from backend_stores import MlflowServer

    server = MlflowServer(str(tmp_path_factory.mktemp("mlflow"))).start()
    yield server
    server.stop()


@pytest.fixture
def wandb_offline(monkeypatch, tmp_path):
    """W&B in offline mode; returns a folder of this test's for its files (pass it as the
    backend's ``dir``: W&B reads WANDB_DIR once per process)."""
    pytest.importorskip("wandb")
    folder = tmp_path / "wandb-home"
    folder.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(folder))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(folder / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(folder / "cache"))
    return str(folder)


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server on loopback for the session (see tests/pg_server.py)."""
    pytest.importorskip("psycopg")
    from pg_server import PostgresServer, binaries

    if binaries() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """`unitb demo --steps 24` once for the session: the three runs the parity and query tests read."""
    from unitb.commands import demo

    torch_run = "mmpose-topdown" if demo.mmpose_installed() else "mmengine-pose"
    root = tmp_path_factory.mktemp("demo")
    out = subprocess.run([sys.executable, "-m", "unitb", "demo", "--out", str(root), "--steps", "24"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"[1/3] {torch_run}" in out.stdout and "[3/3] tf-yolo-loop" in out.stdout
    assert ("mmpose is not installed" in out.stdout) == (torch_run == "mmengine-pose")
    first = out.stdout.split("\n\n", 1)[1] if "\n\n" in out.stdout else out.stdout
    assert first.lstrip().startswith("parity: OK"), out.stdout[-2000:]  # the verdict before anything else
    assert "note:" not in out.stdout  # the notes are in parity.txt
    assert "note:" in (root / "parity.txt").read_text()
    assert f"tensorboard --logdir {root}" in out.stdout
    assert "HPARAMS:" in out.stdout
    return str(root)
