"""A sweep's parameters as Optuna searches them, and the sampler and pruner its method names.

- ``grid`` → ``GridSampler`` over each parameter's values (every combination once, however many
  agents ask); ``random`` → ``RandomSampler``; ``bayes`` → ``TPESampler`` (multivariate, with
  ``constant_liar`` so agents running at once spread out; TPE rather than a Gaussian process:
  it takes categorical and integer parameters as they are and its cost per trial stays flat).
- ``early_terminate: hyperband`` → ``HyperbandPruner(min_resource=min_iter, max_resource=max_iter,
  reduction_factor=eta)``, counted in the metric's steps; with ``max_iter`` and ``s`` but no
  ``min_iter``, ``min_iter = max_iter / eta**(s-1)`` (``s`` brackets below ``max_iter``).

W&B's distributions that Optuna has are handed over as they are (``uniform``, ``int_uniform``,
``q_uniform`` with its step, ``log_uniform_values``, ``log_uniform`` with its bounds taken out of
log space, ``inv_log_uniform_values``, whose values are log-uniform too). The others are searched
through a variable Optuna has and turned into the value W&B would give: ``q_log_uniform*`` is a
log-uniform value rounded to ``q``; ``normal`` and ``log_normal`` search their quantile in
(0, 1) (so TPE still models them), mapped through the inverse CDF. ``beta`` (no inverse CDF
without SciPy) and categorical ``probabilities`` (no Optuna sampler weighs choices) are refused,
naming the parameter, before any trial starts.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping

from unitb.sweep.config import Parameter, SweepConfig, SweepConfigError, quantized

QUANTILE_EDGE = 1e-6  # a normal's quantile stays inside (0, 1)


@dataclass(frozen=True)
class Dimension:
    """One parameter: what Optuna searches (``distribution``) and the value a trial is given."""

    parameter: Parameter
    distribution: Any  # an optuna.distributions.BaseDistribution
    to_value: Callable[[Any], Any]

    @property
    def name(self) -> str:
        return self.parameter.name


def _rounded(q: float) -> Callable[[float], float]:
    return lambda value: quantized(value, q)


def dimension(parameter: Parameter) -> Dimension:
    """The Optuna side of ``parameter`` (see the module docstring)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    s, kind = parameter.settings, parameter.distribution

    def same(value: Any) -> Any:
        return value

    if kind == "constant":
        return Dimension(parameter, CategoricalDistribution([s["value"]]), same)
    if kind == "categorical":
        if s.get("probabilities") is not None:
            raise SweepConfigError(f"parameters.{parameter.name}: probabilities are not supported (no Optuna "
                                   "sampler weighs its choices); list a value more than once to weigh it")
        return Dimension(parameter, CategoricalDistribution(list(s["values"])), same)
    if kind == "int_uniform":
        return Dimension(parameter, IntDistribution(int(s["min"]), int(s["max"])), same)
    if kind == "uniform":
        return Dimension(parameter, FloatDistribution(float(s["min"]), float(s["max"])), same)
    if kind == "q_uniform":
        q = s.get("q", 1.0)
        high = float(parameter.grid_values()[-1])  # the last step at or below max, as a grid counts them
        return Dimension(parameter, FloatDistribution(float(s["min"]), high, step=float(q)), _rounded(q))
    if kind in ("log_uniform_values", "inv_log_uniform_values"):
        return Dimension(parameter, FloatDistribution(float(s["min"]), float(s["max"]), log=True), same)
    if kind in ("log_uniform", "inv_log_uniform"):
        low, high = math.exp(float(s["min"])), math.exp(float(s["max"]))
        if kind == "inv_log_uniform":  # 1/exp(x), x uniform in [min, max]: log-uniform on the inverted bounds
            low, high = 1.0 / high, 1.0 / low
        return Dimension(parameter, FloatDistribution(low, high, log=True), same)
    if kind in ("q_log_uniform_values", "q_log_uniform"):
        low, high = float(s["min"]), float(s["max"])
        if kind == "q_log_uniform":
            low, high = math.exp(low), math.exp(high)
        return Dimension(parameter, FloatDistribution(low, high, log=True), _rounded(s.get("q", 1.0)))
    if kind in ("normal", "q_normal", "log_normal", "q_log_normal"):
        normal = statistics.NormalDist(float(s.get("mu", 0.0)), float(s.get("sigma", 1.0)))
        step = s.get("q", 1.0) if kind.startswith("q_") else None

        def from_quantile(u: float) -> float:
            value = normal.inv_cdf(u)
            value = math.exp(value) if "log" in kind else value
            return _rounded(step)(value) if step is not None else value

        return Dimension(parameter, FloatDistribution(QUANTILE_EDGE, 1.0 - QUANTILE_EDGE), from_quantile)
    raise SweepConfigError(f"parameters.{parameter.name}: distribution {kind} is not supported (its inverse CDF "
                           "needs SciPy); use uniform, normal or values")


def dimensions(config: SweepConfig) -> List[Dimension]:
    """Every parameter's dimension; what cannot be searched is refused here, before any trial."""
    return [dimension(parameter) for parameter in config.parameters]


def suggest(trial, dims: List[Dimension]) -> Dict[str, Any]:
    """The values a trial runs with, asked of Optuna's ``trial`` one dimension at a time."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    searched: Dict[str, Any] = {}
    for dim in dims:
        d = dim.distribution
        if isinstance(d, CategoricalDistribution):
            searched[dim.name] = trial.suggest_categorical(dim.name, d.choices)
        elif isinstance(d, IntDistribution):
            searched[dim.name] = trial.suggest_int(dim.name, d.low, d.high, step=d.step, log=d.log)
        else:
            searched[dim.name] = trial.suggest_float(dim.name, d.low, d.high, step=d.step, log=d.log)
    return trial_values(dims, searched)


def trial_values(dims: List[Dimension], searched: Mapping[str, Any]) -> Dict[str, Any]:
    """The values a trial runs with, from what Optuna suggested (``trial.params``)."""
    return {dim.name: dim.to_value(searched[dim.name]) for dim in dims}


def sampler(config: SweepConfig, seed: Any = None):
    """The Optuna sampler of the sweep's method. Every agent of a grid sweep must pass the same
    ``seed`` (the sweep keeps it): ``GridSampler`` gives trial *n* the *n*-th combination of its
    seed's shuffle, and agents with other shuffles run the same combination twice."""
    import optuna

    if config.method == "grid":
        return optuna.samplers.GridSampler({p.name: p.grid_values() for p in config.parameters}, seed=seed)
    if config.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def pruner(config: SweepConfig):
    """Hyperband for ``early_terminate``, else none."""
    import optuna

    hyperband = config.early_terminate
    if hyperband is None:
        return optuna.pruners.NopPruner()
    eta = int(round(hyperband.eta))
    min_iter = hyperband.min_iter
    if min_iter is None and hyperband.max_iter is not None and hyperband.s is not None:
        min_iter = max(1, int(hyperband.max_iter / eta ** (hyperband.s - 1)))  # s brackets below max_iter
    return optuna.pruners.HyperbandPruner(min_resource=min_iter or 1, max_resource=hyperband.max_iter or "auto",
                                          reduction_factor=eta)
