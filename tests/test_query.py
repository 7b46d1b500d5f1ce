"""Many runs as tables: ``unitb.runs``, ``unitb.scalars``, ``unitb query`` (DuckDB) and the index
beside the runs, over real runs of all four entry points, checked against an independent read
of their event files."""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import unitb
from unitb import reader
from unitb.files.names import CLAIM, ENDED, INDEX_FOLDER
from unitb.query import index as run_index
from unitb.query.run_facts import lower_is_better

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
GUIDE = os.path.join(ROOT, "docs", "query.md")
ENTRY_POINTS = {"mmpose-topdown": ("pytorch", "EnhancedTensorBoardHook"), "mmengine-pose": ("pytorch", "EnhancedTensorBoardHook"),
                "keras-fit": ("tensorflow", "TFCallback"), "tf-yolo-loop": ("tensorflow", "TFLogger"),
                "torch-loop": ("pytorch", "TorchLogger")}

# The small study the README's questions are asked of: (name, optimizer, learning rate, seed, the
# loss at step s, the validation loss at step s). adam-0.01 overfits at the end; the runs at 1.0 diverge.
STUDY = [
    ("sgd-0.1-s0", "sgd", 0.1, 0, lambda s: 2.0 / s, lambda s: 3.0 / s),
    ("sgd-0.1-s1", "sgd", 0.1, 1, lambda s: 2.2 / s, lambda s: 3.3 / s),
    ("sgd-0.01-s0", "sgd", 0.01, 0, lambda s: 4.0 / s, lambda s: 5.0 / s),
    ("adam-0.01-s0", "adam", 0.01, 0, lambda s: 1.0 / s, lambda s: 2.0 / s if s < 19 else 2.0 / s + 0.5),
    ("adam-1.0-s0", "adam", 1.0, 0, lambda s: 0.1 * s * s, lambda s: 0.5 * s),
    ("sgd-1.0-s0", "sgd", 1.0, 0, lambda s: 1.0 / s if s < 15 else 5.0, lambda s: 1.0),
]
STEPS = 20


def write_torch_run(folder, optimizer, lr, seed, loss, val_loss, steps=STEPS, close=True):
    log = unitb.TorchLogger(folder, hparams={"optimizer": optimizer, "learning_rate": lr, "seed": seed,
                                             "batch_size": 16}, scalar_interval=1, system_interval=0,
                            log_model_stats=False, log_speed=False)
    for step in range(1, steps + 1):
        log.log_step(step, loss=loss(step), epoch=(step - 1) // 5)
        if step % 2 == 0:
            log.log_val(step, {"loss": val_loss(step)})
    if close:
        log.close()
    return log


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    for name, optimizer, lr, seed, loss, val_loss in STUDY:
        write_torch_run(str(root / name), optimizer, lr, seed, loss, val_loss)
    return str(root)


@pytest.fixture(scope="module")
def four_entry_points(demo_root, tmp_path_factory):
    """The demo's three runs (mmpose hook, Keras fit, TF loop) and a TorchLogger loop, in a copy."""
    root = tmp_path_factory.mktemp("four") / "runs"
    shutil.copytree(demo_root, root, ignore=shutil.ignore_patterns(INDEX_FOLDER))
    write_torch_run(str(root / "torch-loop"), "sgd", 0.1, 0, lambda s: 1.0 / s, lambda s: 2.0 / s)
    return str(root)


def _independent(run_dir):
    """Tag -> (steps, wall times, values) in writing order, from the reader's rows."""
    out = {}
    for row in reader.read_run(run_dir):
        if row.kind == "scalar":
            steps, walls, values = out.setdefault(row.tag, ([], [], []))
            steps.append(row.step)
            walls.append(row.wall_time)
            values.append(row.value)
    return out


def test_the_runs_table_of_all_four_entry_points_equals_an_independent_read(four_entry_points):
    table = unitb.runs(four_entry_points)
    rows = {row["run"]: row for row in table.to_pylist()}
    assert set(rows) == {run for run in ENTRY_POINTS if os.path.isdir(os.path.join(four_entry_points, run))}
    assert len(rows) == 4
    for name, row in rows.items():
        run_dir = os.path.join(four_entry_points, name)
        assert (row["framework"], row["entry_point"]) == ENTRY_POINTS[name]
        assert row["status"] == "finished"
        points = _independent(run_dir)
        walls = [w for _, ws, _ in points.values() for w in ws]
        assert row["start_time"].timestamp() == pytest.approx(min(walls), abs=1e-5)
        assert row["end_time"].timestamp() == pytest.approx(max(walls), abs=1e-5)
        assert row["steps"] == max(s for ss, _, _ in points.values() for s in ss)
        for tag in ("train/loss", "train/epoch"):
            steps, _, values = points[tag]
            last = values[int(np.flatnonzero(np.array(steps) == max(steps))[-1])]
            best = min(values) if lower_is_better(tag) else max(values)
            assert row[f"{tag}.last"] == pytest.approx(last, rel=1e-6)
            assert row[f"{tag}.best"] == pytest.approx(best, rel=1e-6)
            assert row[f"{tag}.best_step"] == steps[values.index(best)]
        hparams = reader.hparams(run_dir)
        for key, value in hparams.items():
            if key != "framework" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
                column = f"hparam.{key}" if key in ("run", "path", "status", "steps") else key
                assert row[column] == pytest.approx(value) if isinstance(value, float) else row[column] == value
    # The long table: every scalar point of every run, the epoch and samples axes filled from the run.
    points = unitb.scalars(four_entry_points, tags=["train/loss"])
    for name in rows:
        mine = [p for p in points.to_pylist() if p["run"] == name]
        steps, walls, values = _independent(os.path.join(four_entry_points, name))["train/loss"]
        assert [p["step"] for p in mine] == steps and [p["value"] for p in mine] == pytest.approx(values)
        assert [p["wall_time"] for p in mine] == pytest.approx(walls)
        batch = rows[name]["batch_size"]
        assert [p["samples"] for p in mine] == [s * batch for s in steps]
        epochs = _independent(os.path.join(four_entry_points, name))["train/epoch"]
        for p in mine:  # the run's train/epoch at (or before) that step
            earlier = [e for s, e in zip(epochs[0], epochs[2]) if s <= p["step"]]
            assert p["epoch"] == (pytest.approx(earlier[-1]) if earlier else None)


def test_no_pandas_is_imported_unless_asked(study):
    code = ("import sys, unitb; t = unitb.runs(sys.argv[1]); s = unitb.scalars(sys.argv[1]); "
            "assert t.num_rows == 6 and s.num_rows > 0; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, study], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def _readme_questions():
    """The SQL of the README's `unitb query … - <<'SQL'` blocks, in order."""
    text = open(README, encoding="utf-8").read()
    return re.findall(r"unitb query \S+ - <<'SQL'\n(.*?)\nSQL\n", text, re.S)


def _ask(logdir, sql, fmt="json"):
    out = subprocess.run([sys.executable, "-m", "unitb", "query", logdir, "-", "--format", fmt], input=sql,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout) if fmt == "json" else out.stdout


def test_the_readme_questions_answer_as_the_study_was_written(study):
    best_per_optimizer, rose_at_the_end, never_diverged = _readme_questions()
    answer = _ask(study, best_per_optimizer)
    assert [(r["optimizer"], r["best_run"]) for r in answer] == [("adam", "adam-0.01-s0"), ("sgd", "sgd-0.1-s0")]
    assert answer[0]["best_val_loss"] == pytest.approx(2.0 / 18)
    assert [r["run"] for r in _ask(study, rose_at_the_end)] == ["adam-0.01-s0", "adam-1.0-s0"]
    answer = _ask(study, never_diverged)
    assert [(r["learning_rate"], r["runs"]) for r in answer] == [(0.01, 2), (0.1, 2)]
    text = _ask(study, "SELECT run, steps FROM runs ORDER BY run LIMIT 2", fmt="table")
    assert text.splitlines()[0].split() == ["run", "steps"] and text.rstrip().endswith("(2 rows)")
    csv_text = _ask(study, "SELECT name, count(*) AS n FROM hparams GROUP BY name ORDER BY name", fmt="csv")
    assert csv_text.splitlines()[:2] == ["name,n", "batch_size,6"]


def test_a_bad_question_is_one_clear_error(study):
    out = subprocess.run([sys.executable, "-m", "unitb", "query", study, "SELECT nonsense FROM runs"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("unitb query: Binder Error") and "Traceback" not in out.stderr


def _manifest(root):
    with open(os.path.join(run_index.index_folder(root), run_index.MANIFEST)) as handle:
        return json.load(handle)["runs"]


def test_the_index_reads_again_only_what_grew_or_was_added(tmp_path):
    root = str(tmp_path / "runs")
    write_torch_run(os.path.join(root, "done"), "sgd", 0.1, 0, lambda s: 1.0 / s, lambda s: 1.0)
    live = write_torch_run(os.path.join(root, "live"), "adam", 0.01, 0, lambda s: 2.0 / s, lambda s: 1.0, steps=10,
                           close=False)
    live.run.flush()
    first = {row["run"]: row for row in unitb.runs(root).to_pylist()}
    assert first["live"]["steps"] == 10 and first["live"]["status"] == "running"  # its writer is this process
    assert first["done"]["status"] == "finished"
    points = {name: entry["points"] for name, entry in _manifest(root).items()}
    for step in range(11, 16):  # the live run grows
        live.log_step(step, loss=2.0 / step)
    live.run.flush()
    grown = {row["run"]: row for row in unitb.runs(root).to_pylist()}
    assert grown["live"]["steps"] == 15 and grown["live"]["train/loss.last"] == pytest.approx(2.0 / 15)
    now = {name: entry["points"] for name, entry in _manifest(root).items()}
    assert now["done"] == points["done"] and now["live"] != points["live"]  # only the grown run read again
    live.close()
    write_torch_run(os.path.join(root, "added"), "sgd", 0.5, 1, lambda s: 1.0, lambda s: 1.0)
    rows = {row["run"]: row for row in unitb.runs(root).to_pylist()}
    assert set(rows) == {"done", "live", "added"} and rows["live"]["status"] == "finished"
    assert _manifest(root)["done"]["points"] == points["done"]
    shutil.rmtree(os.path.join(root, "added"))
    assert [row["run"] for row in unitb.runs(root).to_pylist()] == ["done", "live"]


def test_two_processes_building_the_index_at_once_leave_it_whole(tmp_path):
    root = tmp_path / "runs"
    for i in range(12):
        write_torch_run(str(root / f"r{i:02d}"), "sgd", 0.1 * (i + 1), i, lambda s: 1.0 / s, lambda s: 1.0)
    sql = "SELECT count(*) AS n, count(DISTINCT run) AS runs FROM scalars WHERE tag = 'train/loss'"
    builders = [subprocess.Popen([sys.executable, "-m", "unitb", "query", str(root), sql, "--format", "json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    answers = [builder.communicate(timeout=180) for builder in builders]
    assert [b.returncode for b in builders] == [0, 0], [err[-2000:] for _, err in answers]
    assert [json.loads(out) for out, _ in answers] == [[{"n": 12 * STEPS, "runs": 12}]] * 2
    import pyarrow.parquet as pq

    entries = _manifest(str(root))
    assert sorted(entries) == [f"r{i:02d}" for i in range(12)]
    for name, entry in entries.items():  # every entry whole: its points file there and readable
        table = pq.read_table(entry["points"])
        assert set(table.column("run").to_pylist()) == {name}
    assert not [n for n in os.listdir(run_index.index_folder(str(root))) if n.endswith(".tmp")]


def test_torn_runs_mixed_types_missing_hparams_and_a_crash_each_give_a_sensible_row(tmp_path):
    root = tmp_path / "runs"
    write_torch_run(str(root / "eight"), "sgd", 0.1, 8, lambda s: 1.0, lambda s: 1.0)
    log = unitb.TorchLogger(str(root / "text-eight"), hparams={"seed": "8"}, scalar_interval=1, system_interval=0,
                            log_model_stats=False)
    log.log_step(1, loss=1.0)
    log.close()
    bare = unitb.TorchLogger(str(root / "no-hparams"), scalar_interval=1, system_interval=0, log_model_stats=False)
    bare.log_step(1, loss=3.0)
    bare.close()
    # A crash: the writer's process is gone and it never closed (no end mark).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim = json.loads((root / "eight" / CLAIM).read_text())
    claim["pid"] = int(dead.stdout)
    (root / "eight" / CLAIM).write_text(json.dumps(claim))
    os.remove(root / "eight" / ENDED)
    # A torn last record: the file cut in the middle of its last event.
    torn = root / "torn"
    shutil.copytree(root / "text-eight", torn)
    event = next(p for p in torn.iterdir() if p.name.startswith("events.out"))
    event.write_bytes(event.read_bytes()[:-7])
    rows = {row["run"]: row for row in unitb.runs(str(root)).to_pylist()}
    assert rows["eight"]["status"] == "crashed"
    assert rows["eight"]["seed"] == "8" and rows["text-eight"]["seed"] == "8"  # 8 and "8": one text column
    assert rows["no-hparams"]["seed"] is None and rows["no-hparams"]["train/loss.last"] == 3.0
    assert rows["torn"]["run"] == "torn" and rows["torn"]["steps"] is not None


def guide_blocks(path, test):
    """The ``(language, code)`` of each block of ``path`` marked as run by ``test``."""
    text = open(path, encoding="utf-8").read()
    return re.findall(rf"<!-- run by: {re.escape(test)} -->\n```(\w+)\n(.*?)```", text, re.S)


def run_blocks(blocks, cwd):
    """Run each block as written in ``cwd`` (where ``runs`` is the logdir), this interpreter's
    ``unitb`` first on the PATH; returns what each printed."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    printed = []
    for language, code in blocks:
        command = [sys.executable, "-c", code] if language == "python" else ["bash", "-e", "-c", code]
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (code, done.stderr[-2000:])
        printed.append(done.stdout)
    return printed


def test_the_guide_examples_run_as_written(study, tmp_path):
    os.symlink(study, tmp_path / "runs")
    blocks = guide_blocks(GUIDE, "tests/test_query.py")
    assert [language for language, _ in blocks] == ["python", "bash"]
    _, shell = run_blocks(blocks, tmp_path)
    table, csv_text = shell.split("(6 rows)\n")
    assert table.splitlines()[0].split() == ["run", "framework", "status", "steps"]
    assert csv_text.splitlines()[0] == "run,samples,best_loss" and len(csv_text.splitlines()) == 7
    assert "adam-0.01-s0,320.0,0.05" in csv_text  # 20 steps of batch 16; its best loss 1/20


def test_a_store_that_does_not_answer_is_one_line_and_exit_2(tmp_path):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9",
               AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="1")
    for command in (["query", "s3://bucket/runs", "SELECT 1"], ["report", "s3://bucket/runs", "--out",
                                                                 str(tmp_path / "r.html")]):
        out = subprocess.run([sys.executable, "-m", "unitb", *command], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2
        assert out.stderr.startswith(f"unitb {command[0]}: cannot read s3://bucket/runs (EndpointConnectionError")
        assert len(out.stderr.strip().splitlines()) == 1
