"""A real 2-process DDP run (torchrun, gloo, mmengine launcher='pytorch'): one writer."""
import json
import os
import subprocess
import sys

import pytest

from tb_server import free_port
from unitb import reader

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "ddp_pose.py")


def test_two_process_ddp_writes_one_event_file_from_rank_zero(tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                          str(free_port()), SCRIPT, str(tmp_path / "work"), str(tmp_path / "tb")],
                         capture_output=True, text=True, timeout=400,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    reports = {r["rank"]: r for r in (json.loads(line) for line in out.stdout.splitlines() if line.startswith("{"))}
    assert set(reports) == {0, 1}
    assert reports[0]["wrapped"] == "MMDistributedDataParallel"
    assert reports[0]["has_recorder"] and reports[0]["probe"]
    assert not reports[1]["has_recorder"] and not reports[1]["probe"]  # no writer, no logging work
    files = reader.event_files(str(tmp_path / "tb"))
    assert len(files) == 1
    rows = reader.read_run(str(tmp_path / "tb"))
    assert [r.step for r in rows if r.tag == "train/loss"] == list(range(1, 9))
    norms = {r.step: r.value for r in rows if r.tag == "train/gradient_norm/global"}
    assert sorted(norms) == [1, 2, 4, 6, 8]
    for step, value in norms.items():  # the all-reduced gradients rank 0 applied
        assert value == pytest.approx(reports[0]["witness"][str(step)], rel=1e-5)
        assert value == pytest.approx(reports[1]["witness"][str(step)], rel=1e-5)  # same on both ranks
    assert not [r for r in rows if "module." in r.tag]  # the DDP wrapper is unwrapped


FSDP_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "fsdp_loop.py")


def test_fsdp_logs_the_norm_of_the_whole_gradient_not_rank_zeros_shard(tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                          str(free_port()), FSDP_SCRIPT, str(tmp_path / "run"), str(tmp_path)],
                         capture_output=True, text=True, timeout=400,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-3000:]
    reports = {rank: json.loads((tmp_path / f"report{rank}.json").read_text()) for rank in (0, 1)}
    assert reports[0]["writes"] and not reports[1]["writes"]
    assert len(reader.event_files(str(tmp_path / "run"))) == 1 and not os.path.exists(str(tmp_path / "run-2"))
    rows = reader.read_run(str(tmp_path / "run"))
    assert [r.step for r in rows if r.tag == "train/loss"] == list(range(1, 7))
    norms = {r.step: r.value for r in rows if r.tag == "train/gradient_norm/global"}
    assert sorted(norms) == [1, 2, 4, 6]
    for step, value in norms.items():
        assert value == pytest.approx(reports[0]["witness"][str(step)], rel=1e-5)
        assert value != pytest.approx(reports[0]["shard_only"][str(step)], rel=1e-3)
    layers = {r.tag for r in rows if r.tag.startswith("train/gradient_norm/layers/")}
    assert layers and not [t for t in layers if "_fsdp" in t or "module." in t]
