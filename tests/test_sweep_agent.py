"""unitb sweep's agents, end to end: real Optuna, real processes (the CLI and each trial), real
tiny torch training, and the trials' event files read back."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tb_server import tensorboard

pytest.importorskip("optuna")
pytest.importorskip("yaml")
pytest.importorskip("torch")

from unitb import reader, schema  # noqa: E402
from unitb.sweep import study as sweep_study  # noqa: E402
from unitb.sweep.status import trial_rows  # noqa: E402
from unitb.write import hparams  # noqa: E402

# A tiny torch regression trained by TorchLogger's plain-loop API: its val/loss falls faster
# with a larger lr (clearly worse below 0.01). Flushes nothing itself.
TORCH_TRAINING = textwrap.dedent('''
    import argparse, sys, time
    import torch
    from torch_adapter import TorchLogger

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--worse_per_trial", type=float, default=0.0)
    args = parser.parse_args()
    from unitb.life.sweep_trial import current
    handicap = args.worse_per_trial * current().number if args.worse_per_trial else 0.0  # later trials are worse
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = torch.nn.Sequential(torch.nn.Linear(3, args.width), torch.nn.Linear(args.width, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    log = TorchLogger("runs/not-used-inside-a-sweep", model=model, optimizer=optimizer, log_speed=False,
                      log_train_images=False, log_model_stats=False)
    for step in range(1, args.steps + 1):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        log.log_step(step, loss=loss)
        if step % 2 == 0:
            with torch.no_grad():
                log.log_scalar("val/loss", float(torch.nn.functional.mse_loss(model(x), y)) + handicap)
        time.sleep(args.sleep)
    log.close()
''')


# A script that is not unitb's: TensorBoard's own event file writer (with its pure-Python file
# layer: the stand-in keeps TensorFlow's import time out of the test).
PLAIN_WRITER = textwrap.dedent('''
    import json, os, sys, time
    sys.modules["tensorflow"] = None
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(json.loads(os.environ["UNITB_SWEEP_TRIAL"])["logdir"])

    def scalar(tag, value, step):
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        writer.add_event(Event(step=step, wall_time=time.time(), summary=summary))
        writer.flush()
''')


# The DuckDB query of docs/sweeps.md over a sweep's export: each trial's last val/loss, best first.
README_QUERY = """
SELECT s.run, h.lr, h.width, arg_max(s.value, s.step) AS last_val_loss
FROM 'sweep.parquet' s JOIN 'sweep.hparams.parquet' h USING (run)
WHERE s.tag = 'val/loss'
GROUP BY s.run, h.lr, h.width
ORDER BY last_val_loss
"""


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def unitb(tmp_path, *args: str, timeout: float = 240, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unitb", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def last_value(run: str, tag: str) -> float:
    steps, values = reader.scalar_arrays(run)[tag]
    return float(values[steps.argmax()])


def test_a_grid_with_two_agents_runs_each_combination_once_in_its_own_run(tmp_path):
    write(tmp_path, "train.py", TORCH_TRAINING)
    write(tmp_path, "sweep.yaml", textwrap.dedent("""
        program: train.py
        method: grid
        metric: {name: val/loss, goal: minimize}
        parameters:
          lr: {values: [0.02, 0.1]}
          width: {values: [2, 8]}
    """))
    done = unitb(tmp_path, "sweep", "run", "sweep.yaml", "--agents", "2", "--name", "grid")
    assert done.returncode == 0, done.stderr
    sweep = sweep_study.find("grid", str(tmp_path / "sweeps"))
    trials = sweep.study().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    combos = sorted((t.params["lr"], t.params["width"]) for t in trials)
    assert combos == [(0.02, 2), (0.02, 8), (0.1, 2), (0.1, 8)]

    chosen = {}
    for trial in trials:
        run = str(tmp_path / "sweeps" / "grid" / f"trial-{trial.number:03d}")
        assert reader.find_runs(run) == [run]  # its own folder, nothing shared
        values = reader.hparams(run)
        assert (values["lr"], values["width"], values["sweep"], values["trial"]) == (
            trial.params["lr"], trial.params["width"], "grid", trial.number)
        # The trial's value is the last val/loss its run wrote, read independently here.
        assert trial.value == pytest.approx(last_value(run, "val/loss"), rel=1e-6)
        chosen[trial.number] = last_value(run, "val/loss")
    # The best trial, as `status` lists it first, is the one the event files pick.
    assert trial_rows(sweep.study())[0].number == min(chosen, key=chosen.get)
    status = unitb(tmp_path, "sweep", "status", "grid")
    assert status.returncode == 0
    first_row = status.stdout.splitlines()[2].split()
    assert first_row[:2] == [str(min(chosen, key=chosen.get)), "complete"]
    assert "Look at them:" in done.stdout and sweep.folder in done.stdout
    # The report: one page that opens offline (plotly.js inside), the trials best first, the
    # three figures by the metric's name and the searched parameters.
    page = unitb(tmp_path, "sweep", "report", "grid", "--out", "report.html")
    assert page.returncode == 0, page.stderr
    html = (tmp_path / "report.html").read_text()
    assert "plotly.js v" in html and not re.search(r"<script[^>]+src=", html)
    for title in ("Optimization History Plot", "Intermediate Values Plot", "Parallel Coordinate Plot",
                  "Hyperparameter Importances"):
        assert title in html
    best = min(chosen, key=chosen.get)
    assert html.index(f"<tr class=\"best\"><td>{best}</td><td>complete</td>") < html.index("Optimization History")
    # The whole sweep as two Parquet tables, queried with DuckDB as docs/sweeps.md shows.
    exported = unitb(tmp_path, "export", "sweeps/grid", "--format", "parquet", "-o", "grid.parquet")
    assert exported.returncode == 0, exported.stderr
    duckdb = pytest.importorskip("duckdb")
    with duckdb.connect() as db:
        best = db.execute(README_QUERY.replace("sweep.parquet", str(tmp_path / "grid.parquet"))
                          .replace("sweep.hparams.parquet", str(tmp_path / "grid.hparams.parquet"))).fetchall()
    assert [(row[0], row[1], row[2]) for row in best] == sorted(
        ((f"trial-{t.number:03d}", t.params["lr"], t.params["width"]) for t in trials),
        key=lambda row: chosen[int(row[0][-3:])])
    assert [row[3] for row in best] == pytest.approx(sorted(chosen.values()), rel=1e-6)
    # HPARAMS through the real server: every trial, the sweep's parameters ticked first as
    # columns, its metric the first metric.
    with tensorboard(sweep.folder, expect_runs=4) as tb:
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True})
        ticked = [info["name"] for info in experiment["hparamInfos"] if info.get("differs")]
        assert {"lr", "width"} <= set(ticked)  # the tab lists the ticked ones by name
        headers = {info["name"]: info.get("displayName", "") for info in experiment["hparamInfos"]}
        # the two learning rates read apart: the sweep's parameter and the optimizer's own at step 0
        assert headers["lr"] == "lr (swept)" and headers["learning_rate"] == "learning_rate (the optimizer's, at step 0)"
        assert [info["name"]["tag"] for info in experiment["metricInfos"]][0] == "val/loss"
        groups = tb.post("/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                      "STATUS_RUNNING"],
            "colParams": [{"hparam": "lr"}, {"hparam": "width"}, {"metric": {"tag": "val/loss"}}],
            "startIndex": 0, "sliceSize": 10})
        shown = sorted((g["hparams"]["lr"], g["hparams"]["width"]) for g in groups["sessionGroups"])
        assert shown == [(0.02, 2), (0.02, 8), (0.1, 2), (0.1, 8)]
        for group in groups["sessionGroups"]:
            value = next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == "val/loss")
            trial = next(t for t in trials if (t.params["lr"], t.params["width"]) == (
                group["hparams"]["lr"], group["hparams"]["width"]))
            assert value == pytest.approx(trial.value, rel=1e-5)


def experiment_of(sweep_folder: str):
    """The HPARAMS experiment the sweep's agents declared (the one summary file)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    from unitb.files.names import EXPERIMENT_FOLDER, EXPERIMENT_SUFFIX

    folder = os.path.join(sweep_folder, EXPERIMENT_FOLDER)  # a folder TensorBoard lists by what it holds
    (summary,) = [name for name in os.listdir(folder) if name.endswith(EXPERIMENT_SUFFIX)]
    events = list(EventFileLoader(os.path.join(folder, summary)).Load())
    (value,) = [v for event in events for v in event.summary.value]
    return plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content).experiment


def test_bayes_with_hyperband_prunes_and_the_pruned_run_is_kept_whole(tmp_path):
    write(tmp_path, "train.py", TORCH_TRAINING)
    # One bracket: every trial meets the others at step 6; one worse than the best there stops.
    # Each trial is made worse than the one before, so which trials stop does not hang on the
    # sampler's draws: trial 0 leads every rung, and trials from 2 on find it there.
    write(tmp_path, "sweep.yaml", textwrap.dedent("""
        program: train.py
        method: bayes
        metric: {name: val/loss, goal: minimize}
        run_cap: 6
        early_terminate: {type: hyperband, min_iter: 6, max_iter: 12, eta: 3}
        parameters:
          lr: {distribution: log_uniform_values, min: 0.0005, max: 0.1}
          steps: {value: 40}
          sleep: {value: 0.06}
          worse_per_trial: {value: 10.0}
    """))
    done = unitb(tmp_path, "sweep", "run", "sweep.yaml", "--agents", "2", "--name", "hb")
    assert done.returncode == 0, done.stderr
    sweep = sweep_study.find("hb", str(tmp_path / "sweeps"))
    trials = sweep.study().get_trials()
    assert len(trials) == 6
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert {2, 3, 4, 5} <= {t.number for t in pruned}, [(t.number, t.state.name, t.params) for t in trials]
    for trial in pruned:
        run = trial.user_attrs["unitb.run"]
        assert trial.user_attrs["unitb.exit_code"] == -signal.SIGTERM  # stopped, not killed
        steps, _ = reader.scalar_arrays(run)["val/loss"]
        pruned_at = max(trial.intermediate_values)  # the study's curve ends at the prune
        assert f"pruned at step {pruned_at} (" in done.stderr
        # Everything logged up to the prune (and what followed until the signal) is in the run.
        assert list(steps) == list(range(2, int(steps.max()) + 1, 2)) and steps.max() >= pruned_at
        assert f"trial {trial.number} (" in done.stderr and "pruned at step" in done.stderr
        # The table says a pruned trial's value is the one at its prune, and says it once.
        row = next(line for line in done.stdout.splitlines() if line.split()[:2] == [str(trial.number), "pruned"])
        assert f" at step {pruned_at} " in row
        # The run itself says it was pruned, and where: the HPARAMS table's column.
        assert reader.scalar_arrays(run)[schema.SWEEP_PRUNED_AT_STEP][0].tolist() == [pruned_at]
    metrics = [(m.name.tag, m.display_name) for m in experiment_of(sweep.folder).metric_infos]
    assert metrics[:2] == [("val/loss", "val/loss"), (schema.SWEEP_PRUNED_AT_STEP, hparams.PRUNED_LABEL)]
    assert not re.search(r"^trial \d+: pruned", done.stdout, flags=re.M)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete and all(t.value == pytest.approx(last_value(t.user_attrs["unitb.run"], "val/loss"), rel=1e-6)
                            for t in complete)
    assert not any(schema.SWEEP_PRUNED_AT_STEP in reader.scalar_arrays(t.user_attrs["unitb.run"]) for t in complete)


def test_a_sweep_whose_trials_all_fail_says_why_and_exits_non_zero(tmp_path):
    write(tmp_path, "train.py", "import sys\nprint('reading the data', file=sys.stderr)\nraise SystemExit(3)\n")
    write(tmp_path, "sweep.yaml", textwrap.dedent("""
        program: train.py
        method: grid
        metric: {name: val/acc, goal: maximize}
        parameters:
          lr: {values: [0.1, 0.2]}
    """))
    done = unitb(tmp_path, "sweep", "run", "sweep.yaml", "--name", "down")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == ("unitb sweep: no trial completed (2 of 2 failed); the first, trial 0: exited with code 3; its "
                    "stderr ends: … reading the data"), last
    assert "Look at them" not in done.stdout  # nothing to look at
    # A program that is not there is refused at create, naming where it was looked for.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    refused = unitb(elsewhere, "sweep", "create", str(tmp_path / "sweep.yaml"))
    assert refused.returncode == 2
    assert f"program: 'train.py' is not a file in {elsewhere}" in refused.stderr
    assert not (elsewhere / "sweeps").exists()


def test_a_crashing_trial_and_one_that_never_writes_the_metric_fail_and_the_agent_goes_on(tmp_path):
    write(tmp_path, "train.py", PLAIN_WRITER + textwrap.dedent('''
        import argparse
        parser = argparse.ArgumentParser(); parser.add_argument("--mode"); mode = parser.parse_args().mode
        scalar("train/loss", 1.5, 1)
        if mode == "crash":
            print("about to fail", file=sys.stderr)
            raise RuntimeError("CUDA out of memory (a stand-in)")
        if mode == "good":
            scalar("val/acc", 0.75, 3)
        writer.close()
    '''))
    write(tmp_path, "sweep.yaml", textwrap.dedent("""
        program: train.py
        method: grid
        metric: {name: val/acc, goal: maximize}
        parameters:
          mode: {values: [crash, silent, good]}
    """))
    done = unitb(tmp_path, "sweep", "run", "sweep.yaml", "--name", "bad")
    assert done.returncode == 0, done.stderr
    sweep = sweep_study.find("bad", str(tmp_path / "sweeps"))
    by_mode = {t.params["mode"]: t for t in sweep.study().get_trials()}
    crash, silent, good = by_mode["crash"], by_mode["silent"], by_mode["good"]
    assert crash.state.name == "FAIL" and crash.user_attrs["unitb.exit_code"] == 1
    assert "exited with code 1" in crash.user_attrs["unitb.error"]
    assert "RuntimeError: CUDA out of memory (a stand-in)" in crash.user_attrs["unitb.error"]
    assert reader.scalars(crash.user_attrs["unitb.run"])["train/loss"] == [(1, 1.5)]  # its run is kept
    assert silent.state.name == "FAIL"
    assert silent.user_attrs["unitb.error"] == "never wrote the metric 'val/acc'; its run wrote 1 tags: train/loss"
    assert good.state.name == "COMPLETE" and good.value == 0.75
    assert "never wrote the metric 'val/acc'" in done.stderr and "exited with code 1" in done.stderr
    status = unitb(tmp_path, "sweep", "status", "bad")
    lines = status.stdout.splitlines()
    assert lines[0] == "sweep bad: 1 done, 0 running, 0 pruned, 2 failed — best val/acc 0.75 (trial " \
        f"{good.number})"
    assert lines[2].split()[:3] == [str(good.number), "complete", "good"]


def test_the_seed_example_config_runs_as_written_with_a_program(tmp_path):
    """The seed's W&B config (random search, valid_accuracy maximised; lr, dropout and batch_size)
    with the program that W&B's function-based agent does not need; a script that is not unitb's."""
    write(tmp_path, "train.py", PLAIN_WRITER + textwrap.dedent('''
        import argparse
        import unitb
        parser = argparse.ArgumentParser()
        for name in ("--lr", "--dropout"):
            parser.add_argument(name, type=float)
        parser.add_argument("--batch_size", type=int)
        args = parser.parse_args()
        assert unitb.sweep_params() == {"lr": args.lr, "dropout": args.dropout, "batch_size": args.batch_size}
        for epoch in range(3):
            scalar("valid_accuracy", 0.5 + args.lr * 10 - args.dropout / 10 + epoch / 100, epoch)
        writer.close()
    '''))
    config = {"method": "random", "metric": {"goal": "maximize", "name": "valid_accuracy"},
              "parameters": {"lr": {"min": 0.0001, "max": 0.01}, "dropout": {"values": [0.1, 0.2, 0.3]},
                             "batch_size": {"values": [16, 32, 64]}},
              "program": "train.py"}
    write(tmp_path, "sweep.json", json.dumps(config))
    created = unitb(tmp_path, "sweep", "create", "sweep.json")
    assert created.returncode == 0, created.stderr
    ident = created.stdout.strip()
    assert len(ident) == 8 and f"unitb sweep agent {ident}" in created.stderr
    ran = unitb(tmp_path, "sweep", "agent", ident, "--count", "3")
    assert ran.returncode == 0, ran.stderr
    trials = sweep_study.find(ident, str(tmp_path / "sweeps")).study().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:
        assert 0.0001 <= t.params["lr"] <= 0.01 and t.params["dropout"] in (0.1, 0.2, 0.3)
        assert t.params["batch_size"] in (16, 32, 64)
        assert t.value == pytest.approx(0.5 + t.params["lr"] * 10 - t.params["dropout"] / 10 + 0.02, rel=1e-5)


def test_ctrl_c_stops_the_trials_and_an_agent_continues_the_sweep(tmp_path):
    write(tmp_path, "train.py", TORCH_TRAINING)
    write(tmp_path, "sweep.yaml", textwrap.dedent("""
        program: train.py
        method: grid
        metric: {name: val/loss, goal: minimize}
        parameters:
          lr: {values: [0.05, 0.1]}
          steps: {value: 150}
          sleep: {value: 0.02}
    """))
    process = subprocess.Popen([sys.executable, "-m", "unitb", "sweep", "run", "sweep.yaml", "--agents", "2",
                                "--name", "stop"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    folder = tmp_path / "sweeps" / "stop"
    deadline = time.monotonic() + 120
    # Wait until both trials have written a point, then press Ctrl-C.
    while time.monotonic() < deadline:
        runs = [folder / f"trial-{n:03d}" for n in range(2)]
        if all(run.is_dir() and "val/loss" in reader.scalar_arrays(str(run)) for run in runs):
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "unitb sweep agent" in out and "interrupted" in err
    sweep = sweep_study.find("stop", str(tmp_path / "sweeps"))
    trials = sweep.study().get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "WAITING", "WAITING"]
    assert all(t.user_attrs.get("unitb.interrupted") for t in trials[:2])
    for t in trials[:2]:  # stopped with SIGTERM, what they logged kept
        assert t.user_attrs["unitb.exit_code"] == -signal.SIGTERM
        assert reader.scalar_arrays(t.user_attrs["unitb.run"])["val/loss"][0].max() >= 2
    # Continue: the two interrupted combinations run again.
    again = unitb(tmp_path, "sweep", "agent", "stop")
    assert again.returncode == 0, again.stderr
    trials = sweep.study().get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert sorted(t.params["lr"] for t in trials[2:]) == [0.05, 0.1]
    assert "every combination of the grid ran (2)" in again.stderr


def test_an_agent_driven_from_python_leaves_the_sweeps_hparams_table(tmp_path, monkeypatch):
    """A team that runs ``Agent`` itself (no ``unitb sweep run``) gets the HPARAMS summary too:
    the sweep's parameter as a column, its metric first."""
    from unitb.sweep.agent import Agent

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "train.py", TORCH_TRAINING)
    sweep = sweep_study.create({"program": "train.py", "method": "grid", "metric": {"name": "val/loss", "goal": "minimize"},
                                "parameters": {"lr": {"values": [0.01, 0.02]}, "steps": {"value": 4}}},
                               name="py", logdir=str(tmp_path / "sweeps"))
    said = []
    assert Agent(sweep, None, say=said.append).run() == 2
    experiment = experiment_of(sweep.folder)
    assert "lr" in [info.name for info in experiment.hparam_infos]
    assert experiment.metric_infos[0].name.tag == "val/loss"
