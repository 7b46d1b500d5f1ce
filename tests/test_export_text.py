"""``unitb export``'s text is fixed: Arrow's compiled formatting must write the bytes Python's
``repr``, ``"%.6f"``, ``csv.writer`` and ``json.dumps`` write, for any number; and a folder of
runs (a sweep's) is read run by run on worker processes into one table, in order."""
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from unitb.commands import cli
from unitb import reader
from unitb.read import logdir, parallel, row_text

pytest.importorskip("pyarrow")


def _awkward_numbers(rng: np.random.Generator) -> np.ndarray:
    """Every region where Arrow's notation differs from repr's, their edges, and random bits."""
    edges = np.array([1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e10, 1e15, 1e16, 1e17, 1e21, 1e22, 1e-300, 5e-324, 2.5e-308,
                      0.0, 1.0, 100.0, 9999999999.0, 9999999999.5, 123456789012345.0, 1e300, 1.7976931348623157e308])
    with np.errstate(over="ignore"):
        near = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    spread = np.concatenate([rng.normal(size=20_000) * 10.0 ** rng.integers(-12, 20, 20_000),
                             np.round(rng.normal(size=5_000) * 1e6),
                             rng.normal(size=5_000).astype(np.float32).astype(np.float64),
                             rng.integers(0, 2 ** 64, 20_000, dtype=np.uint64).view(np.float64)])
    numbers = np.concatenate([near, -near, spread, [np.nan, np.inf, -np.inf, -0.0]])
    return numbers


def test_arrow_writes_the_numbers_python_writes():
    rng = np.random.default_rng(7)
    numbers = _awkward_numbers(rng)
    assert row_text._reprs(numbers).to_pylist() == [repr(x) for x in numbers.tolist()]
    walls = np.concatenate([1.7e9 + rng.random(20_000) * 1e7, rng.random(2_000) * 1e6, numbers[:500],
                            [2.0 ** 19, 2.0 ** 19 - 1e-9, 1700000000.0000005, 1699999999.9999995, 0.5e-6, 1.5e-6]])
    with np.errstate(over="ignore"):
        walls = np.concatenate([walls, np.nextafter(walls, np.inf), np.nextafter(walls, -np.inf)])
    assert row_text._fixed6(walls).to_pylist() == ["%.6f" % x for x in walls.tolist()]


def _scalar_run(path, steps, tags=3, seed=0, nan_at=None):
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(seed)
    writer = SummaryWriter(str(path))
    for step in range(1, steps + 1):
        for tag in range(tags):
            value = float("nan") if step == nan_at else float(rng.normal() * 10.0 ** rng.integers(-9, 12))
            writer.add_scalar(f"train/t{tag}", value, step, walltime=1.7e9 + step * 0.37)
    writer.add_text("notes", "a text row between the scalars", steps)
    writer.close()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_same_bytes_with_and_without_arrow(tmp_path, monkeypatch, fmt):
    _scalar_run(tmp_path / "run", 3000, nan_at=17)
    outputs = []
    for compiled in (True, False):
        monkeypatch.setattr(row_text, "_arrow_available", lambda compiled=compiled: compiled)
        target = tmp_path / f"{compiled}.{fmt}"
        assert cli.main(["export", str(tmp_path / "run"), "--format", fmt, "-o", str(target)]) == 0
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) >= 9001


def _sweep_folder(root, runs=5):
    for index in range(runs):
        _scalar_run(root / f"trial-{index:03d}", 200 + 50 * index, seed=index)
    return [f"trial-{index:03d}" for index in range(runs)]


def test_a_folder_of_runs_exports_as_one_table_with_the_run_first(tmp_path):
    names = _sweep_folder(tmp_path / "sweep")
    target = tmp_path / "all.csv"
    assert cli.main(["export", str(tmp_path / "sweep"), "-o", str(target)]) == 0
    rows = list(csv.reader(io.StringIO(target.read_text(), newline="")))
    assert rows[0] == ["run", "tag", "step", "wall_time", "kind", "value"]
    expected = []
    for name in names:  # each run's rows as its own export writes them, its name in front
        single = tmp_path / f"{name}.csv"
        assert cli.main(["export", str(tmp_path / "sweep" / name), "-o", str(single)]) == 0
        expected += [[name] + row for row in list(csv.reader(io.StringIO(single.read_text(), newline="")))[1:]]
    assert rows[1:] == expected
    assert cli.main(["export", str(tmp_path / "sweep"), "--format", "json", "-o", str(tmp_path / "all.json")]) == 0
    objects = json.loads((tmp_path / "all.json").read_text())
    assert [list(o)[:2] for o in objects[:1]] == [["run", "tag"]]
    assert [(o["run"], o["tag"], o["step"], str(o["value"])) for o in objects] == \
        [(r[0], r[1], int(r[2]), r[5]) for r in expected]


def test_the_workers_hand_back_runs_in_order_and_a_few_at_a_time(tmp_path):
    names = _sweep_folder(tmp_path / "sweep", runs=7)
    runs = logdir.runs_below(str(tmp_path / "sweep"))
    assert [name for name, _ in runs] == names
    parent = os.getpid()
    results = list(parallel.in_order(_pid_and_tags, runs, workers=2))
    assert {pid for pid, _ in results} - {parent} and parent not in {pid for pid, _ in results}
    assert [tags for _, tags in results] == [_pid_and_tags(run)[1] for run in runs]


def _pid_and_tags(run):
    return os.getpid(), reader.tag_summary(run[1])


def test_tags_and_diff_over_a_folder_of_runs(tmp_path):
    _sweep_folder(tmp_path / "sweep", runs=3)
    out = subprocess.run([sys.executable, "-m", "unitb", "tags", str(tmp_path / "sweep")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert lines[0] == ["run", "tag", "kind", "count", "first", "last"]
    assert ["trial-001", "train/t2", "scalar", "250", "1", "250"] in lines
    assert ["trial-002", "notes/text_summary", "text", "1", "300", "300"] in lines
    out = subprocess.run([sys.executable, "-m", "unitb", "diff", str(tmp_path / "sweep")], capture_output=True,
                         text=True)
    assert "run3 = " + str(tmp_path / "sweep" / "trial-002") in out.stdout
    assert out.returncode == 1 and "lacks the core families" in out.stdout  # these runs are not unitb's


def test_export_loads_no_pandas(tmp_path):
    """``pa.array`` imports pandas (a third of a second); the export builds its arrays from buffers."""
    _scalar_run(tmp_path / "run", 50)
    script = ("import sys\nfrom unitb.commands import cli\n"
              f"cli.main(['export', {str(tmp_path / 'run')!r}, '-o', {os.devnull!r}])\n"
              f"cli.main(['export', {str(tmp_path)!r}, '--format', 'parquet', '-o', {str(tmp_path / 'o.parquet')!r}])\n"
              "print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_a_folder_of_runs_in_a_store_reads_as_on_disk(s3_env, tmp_path, capsys):
    """Runs in S3 are read by the workers with requests of their own (forked after this process
    listed the bucket): the same table as the same folder on disk."""
    import s3fs

    names = _sweep_folder(tmp_path / "sweep", runs=3)
    url = s3_env + "/sweep"
    s3fs.S3FileSystem().put(str(tmp_path / "sweep"), url, recursive=True)
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert cli.main(["export", str(tmp_path / "sweep"), "-o", str(local)]) == 0
    assert cli.main(["export", url, "-o", str(remote)]) == 0
    assert remote.read_bytes() == local.read_bytes()
    assert list(dict.fromkeys(row.split(",")[0] for row in local.read_text().splitlines()[1:])) == names
    capsys.readouterr()
    assert cli.main(["tags", url]) == 0
    remote_tags = capsys.readouterr().out
    assert cli.main(["tags", str(tmp_path / "sweep")]) == 0
    assert remote_tags == capsys.readouterr().out


def test_a_process_with_other_threads_starts_its_workers_fresh(tmp_path):
    """Forking while another thread holds a lock can hang the child: such a process (one that
    trains, with TensorFlow's or a writer's threads) gets fresh interpreters as workers."""
    import threading

    names = _sweep_folder(tmp_path / "sweep", runs=3)
    runs = logdir.runs_below(str(tmp_path / "sweep"))
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, name="a-writer")
    busy.start()
    try:
        assert parallel._start_method() == "spawn"
        results = list(parallel.in_order(_pid_and_tags, runs, workers=2))
    finally:
        stop.set()
        busy.join()
    assert [tags for _, tags in results] == [reader.tag_summary(folder) for _, folder in runs]
    assert len(results) == len(names) and os.getpid() not in {pid for pid, _ in results}


def test_copying_a_workers_text_goes_on_where_the_kernel_stopped(tmp_path, monkeypatch):
    """A target sendfile cannot write to part-way (or at all) gets the rest through a buffer,
    nothing twice, nothing missing."""
    source = tmp_path / "part.csv"
    source.write_bytes(bytes(range(256)) * 5000)
    calls = []

    def one_piece_then_refuse(out, fd, offset, count):
        if calls:
            raise OSError(22, "Invalid argument")
        calls.append(offset)
        return os.write(out, os.pread(fd, 1000, offset))

    monkeypatch.setattr(os, "sendfile", one_piece_then_refuse)
    with open(source, "rb") as handle, open(tmp_path / "out", "wb") as out:
        logdir._copy(handle, out, source.stat().st_size - 2)
    assert (tmp_path / "out").read_bytes() == source.read_bytes()[:-2]
    buffered = io.BytesIO()  # no file descriptor at all
    with open(source, "rb") as handle:
        logdir._copy(handle, buffered, 10)
    assert buffered.getvalue() == source.read_bytes()[:10]
