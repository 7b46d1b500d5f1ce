"""A real 2-process DDP run (torchrun, gloo, mmengine launcher='pytorch'): one writer."""
import json
import os
import subprocess
import sys

import pytest

from tb_server import free_port
from unitb import reader, schema

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


@pytest.fixture(scope="module")
def fsdp_on_two_nodes(tmp_path_factory):
    """One FSDP run over two nodes of one process each: two torchrun launches, as on two machines."""
    tmp_path = tmp_path_factory.mktemp("fsdp")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    port = str(free_port())
    nodes = [subprocess.Popen([torchrun, "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1",
                               "--master_addr", "127.0.0.1", "--master_port", port, FSDP_SCRIPT,
                               str(tmp_path / "run"), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OMP_NUM_THREADS="1"))
             for node in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=400)
        assert node.returncode == 0, err[-3000:]
    return tmp_path


def test_fsdp_logs_the_norm_of_the_whole_gradient_not_rank_zeros_shard(fsdp_on_two_nodes):
    tmp_path = fsdp_on_two_nodes
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


def test_each_node_of_a_two_node_run_has_its_own_machine_figures_written_by_the_chief(fsdp_on_two_nodes):
    tmp_path = fsdp_on_two_nodes
    reports = {rank: json.loads((tmp_path / f"report{rank}.json").read_text()) for rank in (0, 1)}
    rows = reader.read_run(str(tmp_path / "run"))
    figures = {r.tag for r in rows if r.tag.startswith("system/")}
    assert figures and all(t.startswith(("system/node0/", "system/node1/")) for t in figures)  # every node named
    assert {schema.family_of(t) for t in figures} == {"system/*"}
    last_step = max(r.step for r in rows if r.tag == "train/loss")
    for node in (0, 1):
        rss = [r for r in rows if r.tag == f"system/node{node}/memory/process_rss_mb"]
        assert len(rss) >= 2 and all(0 <= r.step <= last_step for r in rss)
        assert {f"system/node{node}/cpu/host_percent", f"system/node{node}/memory/host_used_mb"} <= figures
        # each node's own process, not the chief's figures twice (node 1 holds 300 MB more)
        assert rss[-1].value == pytest.approx(reports[node]["rss_mb"], rel=0.15)
    node0 = [r.value for r in rows if r.tag == "system/node0/memory/process_rss_mb"]
    node1 = [r.value for r in rows if r.tag == "system/node1/memory/process_rss_mb"]
    assert min(node1) > max(node0) + 200
