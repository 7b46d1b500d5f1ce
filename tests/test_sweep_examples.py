"""The sweep examples of docs/sweeps.md run as written: the Keras model under bayes + Hyperband, and the
mmpose config under a grid passed through mmengine's --cfg-options. Each is cut to fit a test
(fewer trials and steps), everything else as in examples/sweeps/."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

yaml = pytest.importorskip("yaml")
pytest.importorskip("optuna")

from unitb.commands import demo  # noqa: E402
from unitb import reader  # noqa: E402
from unitb.sweep import study as sweep_study  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples", "sweeps")


def run_sweep(tmp_path, config: dict, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "unitb", "sweep", "run", str(path), "--logdir",
                           str(tmp_path / "runs"), *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_keras_example_sweep(tmp_path):
    pytest.importorskip("tensorflow")
    with open(os.path.join(EXAMPLES, "keras_fit.yaml")) as handle:
        config = yaml.safe_load(handle)
    config["run_cap"] = 2
    config["parameters"]["steps"] = {"value": 16}
    done = run_sweep(tmp_path, config, "--agents", "2", "--name", "keras")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = sweep_study.find("keras", str(tmp_path / "runs")).study().get_trials()
    # Hyperband's first rung is at step 16, these trials' last: the second to reach it may stop there.
    assert len(trials) == 2 and "COMPLETE" in {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    for trial in trials:
        run = trial.user_attrs["unitb.run"]
        values = reader.hparams(run)
        assert (values["lr"], values["batch_size"], values["sweep"]) == (
            pytest.approx(trial.params["lr"]), trial.params["batch_size"], "keras")
        steps, losses = reader.scalar_arrays(run)["val/loss"]
        assert trial.intermediate_values[max(trial.intermediate_values)] == pytest.approx(
            float(losses[steps.argmax()]), rel=1e-6)
        assert max(trial.intermediate_values) == 16  # the trial's own --steps, its run's own step meaning


@pytest.mark.skipif(not demo.mmpose_installed(), reason="the mmpose example needs the mmpose extra")
def test_the_mmpose_example_sweep_passes_its_parameters_as_cfg_options(tmp_path):
    with open(os.path.join(EXAMPLES, "mmpose.yaml")) as handle:
        config = yaml.safe_load(handle)
    done = run_sweep(tmp_path, config, "--count", "1", "--name", "pose")
    assert done.returncode == 0, done.stderr[-3000:]
    trial = sweep_study.find("pose", str(tmp_path / "runs")).study().get_trials()[0]
    assert trial.state.name == "COMPLETE"
    run = os.path.join(trial.user_attrs["unitb.run"], "mmpose-topdown")  # the example's --out is the trial's
    values = reader.hparams(run)
    lr, batch = trial.params["optim_wrapper.optimizer.lr"], trial.params["train_dataloader.batch_size"]
    # mmengine took both: the hook reads them back from the Runner's config and its optimizer.
    assert values["optim_wrapper.optimizer.lr"] == lr and values["learning_rate"] == pytest.approx(lr)
    assert values["train_dataloader.batch_size"] == batch and values["batch_size"] == batch
    steps, aps = reader.scalar_arrays(run)["val/coco/AP"]
    assert trial.value == pytest.approx(float(aps[steps.argmax()]), rel=1e-6)
