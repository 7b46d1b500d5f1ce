"""A sweep's parameters as real Optuna searches them (unitb/sweep/space.py): the grid gives every
combination once through a shared journal file, each distribution yields values W&B's would,
the method picks the sampler, hyperband the pruner, and what Optuna cannot search is refused
naming the parameter."""
import math
import statistics

import pytest

optuna = pytest.importorskip("optuna")

from unitb.sweep import config, space  # noqa: E402
from unitb.sweep.config import SweepConfigError  # noqa: E402


def _ask(study, dims):
    trial = study.ask({dim.name: dim.distribution for dim in dims})
    return trial, space.trial_values(dims, trial.params)


def test_a_grid_gives_each_combination_once_to_studies_sharing_a_journal(tmp_path):
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    sweep = config.parse({"method": "grid", "program": "t.py", "metric": {"name": "val/loss"},
                          "parameters": {"lr": {"values": [0.1, 0.01]}, "batch_size": {"values": [8, 16]}}})
    dims = space.dimensions(sweep)
    journal = str(tmp_path / "sweep.journal")
    optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)),
                        sampler=space.sampler(sweep))
    # Two agents: each opens the study from the same file, as separate processes would, with the
    # sweep's one seed (agents with their own seeds would each walk another shuffle of the grid).
    studies = [optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(journal)),
                                 sampler=space.sampler(sweep, seed=11)) for _agent in (1, 2)]
    seen = []

    def objective(trial):  # an agent runs each trial inside optimize (where a finished grid stops it)
        values = space.suggest(trial, dims)
        seen.append((values["lr"], values["batch_size"]))
        return values["lr"] * values["batch_size"]

    for n in range(4):
        studies[n % 2].optimize(objective, n_trials=1)
    assert sorted(seen) == sorted([(0.1, 8), (0.1, 16), (0.01, 8), (0.01, 16)])
    assert len(set(seen)) == 4


def test_each_distribution_yields_what_wandbs_would():
    sweep = config.parse({"method": "random", "program": "t.py", "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "wd": {"distribution": "log_uniform", "min": math.log(1e-5), "max": math.log(1e-3)},
        "inv": {"distribution": "inv_log_uniform_values", "min": 2.0, "max": 50.0},
        "layers": {"min": 2, "max": 5},
        "momentum": {"distribution": "q_uniform", "min": 0.8, "max": 0.95, "q": 0.05},
        "hidden": {"distribution": "q_log_uniform_values", "min": 16, "max": 512, "q": 16},
        "noise": {"distribution": "normal", "mu": 3.0, "sigma": 0.5},
        "scale": {"distribution": "log_normal", "mu": 0.0, "sigma": 0.3},
        "steps": {"distribution": "q_normal", "mu": 100, "sigma": 10, "q": 5},
        "opt": {"values": ["SGD", "Adam"]}, "seed": {"value": 7}}})
    dims = space.dimensions(sweep)
    study = optuna.create_study(sampler=space.sampler(sweep, seed=0))
    drawn = []
    for _ in range(200):
        trial, values = _ask(study, dims)
        study.tell(trial, 0.0)
        drawn.append(values)
    column = {name: [d[name] for d in drawn] for name in drawn[0]}
    assert all(1e-4 <= v <= 1e-1 for v in column["lr"]) and all(1e-5 <= v <= 1e-3 for v in column["wd"])
    assert all(2.0 <= v <= 50.0 for v in column["inv"])
    assert set(column["layers"]) == {2, 3, 4, 5}
    assert set(column["momentum"]) <= {0.8, 0.85, 0.9, 0.95}
    assert all(v % 16 == 0 and 16 <= v <= 512 for v in column["hidden"])
    assert abs(statistics.mean(column["noise"]) - 3.0) < 0.15 and 0.35 < statistics.stdev(column["noise"]) < 0.65
    assert all(v > 0 for v in column["scale"]) and abs(statistics.mean(map(math.log, column["scale"]))) < 0.1
    assert all(v % 5 == 0 for v in column["steps"])
    assert set(column["opt"]) == {"SGD", "Adam"} and set(column["seed"]) == {7}


def test_the_method_picks_the_sampler_and_hyperband_the_pruner():
    base = {"program": "t.py", "metric": {"name": "val/loss"}, "parameters": {"lr": {"values": [0.1, 0.01]}}}
    kinds = {method: type(space.sampler(config.parse({**base, "method": method}))).__name__
             for method in ("grid", "random", "bayes")}
    assert kinds == {"grid": "GridSampler", "random": "RandomSampler", "bayes": "TPESampler"}
    assert type(space.pruner(config.parse({**base, "method": "bayes"}))).__name__ == "NopPruner"
    pruner = space.pruner(config.parse({**base, "method": "bayes", "early_terminate": {
        "type": "hyperband", "min_iter": 3, "eta": 2, "max_iter": 27}}))
    assert type(pruner).__name__ == "HyperbandPruner"
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (3, 27, 2)
    brackets = space.pruner(config.parse({**base, "method": "bayes", "early_terminate": {
        "type": "hyperband", "max_iter": 27, "s": 3, "eta": 3}}))
    assert brackets._min_resource == 3  # 27 / 3**(3-1)


@pytest.mark.parametrize("parameter, named", [
    ({"distribution": "beta", "a": 2, "b": 3}, "parameters.x: distribution beta is not supported"),
    ({"values": ["a", "b"], "probabilities": [0.3, 0.7]}, "parameters.x: probabilities are not supported"),
])
def test_what_optuna_cannot_search_is_named(parameter, named):
    sweep = config.parse({"method": "random", "program": "t.py", "parameters": {"x": parameter}})
    with pytest.raises(SweepConfigError) as caught:
        space.dimensions(sweep)
    assert named in str(caught.value)
