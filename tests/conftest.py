"""Shared fixtures: real writers, real event files, the example models."""
from __future__ import annotations

import os
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
