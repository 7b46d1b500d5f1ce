"""A team's W&B sweep configuration, read as W&B defines it, and every key, distribution or
macro unitb cannot run named before any trial starts (unitb/sweep/config.py, command.py)."""
import json

import pytest

from unitb.sweep import command, config
from unitb.sweep.config import SweepConfigError

# The sweep configuration of the project's W&B guide, as a team has it (plus its program).
GUIDE = {
    "method": "random",
    "metric": {"goal": "maximize", "name": "valid_accuracy"},
    "parameters": {"lr": {"min": 0.0001, "max": 0.01}, "dropout": {"values": [0.1, 0.2, 0.3]},
                   "batch_size": {"values": [16, 32, 64]}},
    "program": "train.py",
}

FULL_YAML = """
program: examples/mmpose/train.py
name: pose-lr
description: learning rate and batch size
project: pose
entity: my-team
method: bayes
metric:
  name: val/coco/AP
  goal: maximize
  target: 0.9
run_cap: 12
early_terminate:
  type: hyperband
  min_iter: 4
  eta: 2
parameters:
  lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
  epochs:
    value: 3
  layers:
    min: 2
    max: 5
  momentum:
    distribution: q_uniform
    min: 0.8
    max: 0.95
    q: 0.05
  noise:
    distribution: normal
    mu: 0.0
    sigma: 0.5
  optimizer:
    parameters:
      type:
        values: [SGD, Adam]
        probabilities: [0.25, 0.75]
      weight_decay:
        distribution: log_normal
        mu: -9
        sigma: 1
command:
  - ${env}
  - ${interpreter}
  - ${program}
  - --cfg-options
  - ${args_no_hyphens}
"""


def test_the_guides_sweep_config_parses_with_wandbs_defaults():
    sweep = config.parse(GUIDE)
    assert sweep.method == "random" and sweep.metric == config.Metric("valid_accuracy", "maximize")
    kinds = {p.name: p.distribution for p in sweep.parameters}
    assert kinds == {"lr": "uniform", "dropout": "categorical", "batch_size": "categorical"}
    assert sweep.command == ("${env}", "${interpreter}", "${program}", "${args}")


def test_a_full_yaml_with_every_kind_of_key(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(FULL_YAML)
    sweep = config.load(str(path))
    assert (sweep.method, sweep.run_cap, sweep.program, sweep.name, sweep.project, sweep.entity) == (
        "bayes", 12, "examples/mmpose/train.py", "pose-lr", "pose", "my-team")
    assert sweep.metric == config.Metric("val/coco/AP", "maximize", 0.9)
    assert sweep.early_terminate == config.Hyperband(eta=2.0, min_iter=4)
    kinds = {p.name: p.distribution for p in sweep.parameters}
    assert kinds == {"lr": "log_uniform_values", "epochs": "constant", "layers": "int_uniform",
                     "momentum": "q_uniform", "noise": "normal", "optimizer.type": "categorical",
                     "optimizer.weight_decay": "log_normal"}
    # The same configuration as JSON reads the same.
    import yaml

    as_json = tmp_path / "sweep.json"
    as_json.write_text(json.dumps(yaml.safe_load(FULL_YAML)))
    assert config.load(str(as_json)) == sweep


def test_a_grid_enumerates_each_combination():
    sweep = config.parse({"method": "grid", "program": "t.py", "parameters": {
        "lr": {"values": [0.1, 0.01]}, "batch_size": {"values": [8, 16]}, "layers": {"min": 1, "max": 3},
        "momentum": {"distribution": "q_uniform", "min": 0.8, "max": 0.9, "q": 0.05}, "seed": {"value": 7}}})
    values = {p.name: p.grid_values() for p in sweep.parameters}
    assert values == {"lr": [0.1, 0.01], "batch_size": [8, 16], "layers": [1, 2, 3], "momentum": [0.8, 0.85, 0.9],
                      "seed": [7]}
    assert sweep.grid_size() == 2 * 2 * 3 * 3


@pytest.mark.parametrize("data, named", [
    ({**GUIDE, "controller": {"type": "remote"}}, "controller must be {type: local}"),
    ({**GUIDE, "job": "team/project/job:v1"}, "job: W&B's servers run these"),
    ({**GUIDE, "parameters": {"learning rate": {"values": [0.1]}}},
     "parameters: 'learning rate' is not a parameter name W&B takes"),
    ({**GUIDE, "parameters": {"opt": {"parameters": {"1lr": {"values": [0.1]}}}}},
     "parameters.opt: '1lr' is not a parameter name"),
    ({**GUIDE, "parameters": {"x": {"distribution": "int_uniform", "min": 0.0, "max": 1.0}}},
     "parameters.x: int_uniform takes integer min and max"),
    ({**GUIDE, "parameters": {"a.b": {"value": 1}, "a": {"parameters": {"b": {"value": 2}}}}},
     "parameters.a.b is given twice"),
    ({**GUIDE, "metric": {"name": "acc", "impute": "median"}}, "metric.impute must be one of latest, best, worst"),
    ({**GUIDE, "method": "hyperopt"}, "method must be one of grid, random, bayes"),
    ({**GUIDE, "parameters": {"lr": {"distribution": "loguniform", "min": 0, "max": 1}}},
     "parameters.lr: unknown distribution 'loguniform'"),
    ({**GUIDE, "method": "grid"}, "parameters.lr: a grid cannot enumerate distribution 'uniform'"),
    ({**GUIDE, "metric": None, "method": "bayes"}, "method bayes needs a metric"),
    ({**GUIDE, "parameters": {"lr": {"min": 0.1, "max": 0.01}}}, "parameters.lr: min 0.1 is above max 0.01"),
    ({**GUIDE, "parameters": {"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}},
     "log_uniform_values takes min and max above 0"),
    ({**GUIDE, "parameters": {"opt": {"values": ["a", "b"], "probabilities": [0.5, 0.6]}}},
     "parameters.opt.probabilities must be 2 numbers"),
    ({**GUIDE, "parameters": {"lr": {"distribution": "normal", "mu": 0, "sigma": 1, "min": 0}}},
     "distribution normal takes mu, sigma, not min"),
    ({**GUIDE, "parameters": {"lr": {"distribution": "q_uniform", "max": 1}}}, "q_uniform needs min"),
    ({**GUIDE, "command": ["${env}", "${python}", "${program}"]}, "unknown macro ${python}"),
    ({key: value for key, value in GUIDE.items() if key != "program"}, "program is missing"),
    ({**GUIDE, "early_terminate": {"type": "envelope"}}, "only type hyperband"),
    ({**GUIDE, "early_terminate": {"type": "hyperband", "eta": 3}}, "hyperband needs min_iter"),
    ({**GUIDE, "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 1}}, "eta must be a number above 1"),
    ({**GUIDE, "run_cap": 0}, "run_cap must be a positive whole number"),
    ({**GUIDE, "metric": {"name": "acc", "goal": "max"}}, "metric.goal must be minimize or maximize"),
    ({**GUIDE, "parameters": {}}, "at least one parameter"),
])
def test_what_cannot_run_is_named_before_any_trial(data, named):
    with pytest.raises(SweepConfigError) as caught:
        config.parse(data)
    assert named in str(caught.value)


def test_a_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("- method: grid\n")
    with pytest.raises(SweepConfigError, match="a mapping of keys, got list"):
        config.load(str(path))


# Shaped as W&B's own example sweep files: a nested group (its sweep-nested-cli example), whole
# and fractional quantization, flags, a list, a name with a dot (mmengine's --cfg-options).
WANDB_SHAPED = {
    "program": "train.py", "method": "random", "metric": {"name": "loss", "impute": "worst"},
    "controller": {"type": "local"},
    "parameters": {
        "optimizer": {"parameters": {"lr": {"value": 0.0001}, "nadam": {"parameters": {"beta": {"value": 0.9}}}}},
        "batch_size": {"distribution": "q_uniform", "min": 8, "max": 64, "q": 8},
        "width": {"distribution": "q_log_uniform_values", "min": 16, "max": 256, "q": 32},
        "momentum": {"distribution": "q_uniform", "min": 0.8, "max": 0.9, "q": 0.05},
        "amp": {"value": True}, "ema": {"value": False}, "layers": {"value": [64, "relu"]},
        "optim_wrapper.optimizer.type": {"value": "SGD"},
    },
}
ALL_MACROS = ["${env}", "${interpreter}", "${program}", "${args}", "--", "${args_no_hyphens}",
              "${args_no_boolean_flags}", "${args_no_equals}", "${args_append_hydra}", "${args_override_hydra}",
              "${args_json}", "${args_json_file}"]


def test_the_arguments_are_the_ones_wandbs_agent_builds():
    """Every macro gives the words W&B's own agent builds (its argument builder, run offline)
    from the values a trial gets; whole q gives whole numbers, as W&B's sampler does."""
    pytest.importorskip("optuna")
    utils = pytest.importorskip("wandb.sdk.launch.sweeps.utils")
    import optuna

    from unitb.sweep import space

    sweep = config.parse({**WANDB_SHAPED, "command": ALL_MACROS})
    assert sweep.notes == ("metric.impute: worst taken; unitb gives the sampler no value for a trial that failed or "
                           "still runs (Optuna leaves failed trials out)",
                           "controller: local taken; unitb's controller is always local (the agents and the study)")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        values = space.suggest(study.ask(), space.dimensions(sweep))
        assert isinstance(values["batch_size"], int) and values["batch_size"] % 8 == 0
        assert isinstance(values["width"], int) and values["width"] % 32 == 0
        assert isinstance(values["momentum"], float)
        arguments = sweep.arguments(values)
        assert arguments["optimizer"] == {"lr": 0.0001, "nadam": {"beta": 0.9}}
        theirs = utils.create_sweep_command_args({"args": {name: {"value": value}
                                                           for name, value in arguments.items()}})
        words = command.command_line(sweep, values, args_json_file="/tmp/a.json", interpreter="/venv/bin/python")
        assert words == ["/usr/bin/env", "/venv/bin/python", "train.py", *theirs["args"], "--",
                         *theirs["args_no_hyphens"], *theirs["args_no_boolean_flags"], *theirs["args_no_equals"],
                         *theirs["args_append_hydra"], *theirs["args_override_hydra"], *theirs["args_json"],
                         "/tmp/a.json"]
    assert "--optimizer={'lr': 0.0001, 'nadam': {'beta': 0.9}}" in words
    assert "--optim_wrapper.optimizer.type=SGD" in words and "--layers=[64, 'relu']" in words


def test_a_grid_of_whole_steps_gives_whole_numbers():
    sweep = config.parse({"method": "grid", "program": "t.py", "parameters": {
        "batch_size": {"distribution": "q_uniform", "min": 8, "max": 32, "q": 8}}})
    assert [type(v) for v in sweep.parameters[0].grid_values()] == [int] * 4
    assert sweep.parameters[0].grid_values() == [8, 16, 24, 32]


def test_an_mmpose_sweep_passes_cfg_options(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(FULL_YAML)
    sweep = config.load(str(path))
    words = command.command_line(sweep, {"optim_wrapper.optimizer.lr": 0.01, "train_dataloader.batch_size": 16},
                                 interpreter="python")
    assert words == ["/usr/bin/env", "python", "examples/mmpose/train.py", "--cfg-options",
                     "optim_wrapper.optimizer.lr=0.01", "train_dataloader.batch_size=16"]
