"""A sweep's configuration in W&B's own format, read and checked before any trial starts.

A team's ``sweep.yaml`` (or JSON) is taken as W&B documents it: ``method`` (grid, random, bayes),
``metric`` (name, goal, target), ``parameters`` (``value``, ``values``, ``min``/``max`` and the
``distribution`` names W&B defines, nested ``parameters`` too), ``early_terminate`` (hyperband),
``run_cap``, ``program`` and ``command`` with W&B's macros; ``name``, ``description``, ``project``
and ``entity`` are kept as given. Anything else — a key, a distribution, a macro — is a
:class:`SweepConfigError` that names it and where it stands, so nothing is half understood.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
TOP_KEYS = ("program", "method", "metric", "parameters", "early_terminate", "run_cap", "command", "name",
            "description", "project", "entity")
# What each distribution needs and takes besides ``distribution`` (W&B's names and meanings).
DISTRIBUTIONS: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "constant": (("value",), ()),
    "categorical": (("values",), ("probabilities",)),
    "int_uniform": (("min", "max"), ()),
    "uniform": (("min", "max"), ()),
    "q_uniform": (("min", "max"), ("q",)),
    "log_uniform": (("min", "max"), ()),  # exp(uniform(min, max)): bounds in log space
    "log_uniform_values": (("min", "max"), ()),  # bounds as values
    "q_log_uniform": (("min", "max"), ("q",)),
    "q_log_uniform_values": (("min", "max"), ("q",)),
    "inv_log_uniform": (("min", "max"), ()),
    "inv_log_uniform_values": (("min", "max"), ()),
    "normal": ((), ("mu", "sigma")),
    "q_normal": ((), ("mu", "sigma", "q")),
    "log_normal": ((), ("mu", "sigma")),
    "q_log_normal": ((), ("mu", "sigma", "q")),
    "beta": ((), ("a", "b")),
    "q_beta": ((), ("a", "b", "q")),
}
# Distributions a grid can enumerate.
GRID_DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "q_uniform")
MACROS = ("${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}", "${args_json}",
          "${args_json_file}", "${args_no_boolean_flags}")
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")


class SweepConfigError(ValueError):
    """A sweep configuration unitb cannot run as written."""


@dataclass(frozen=True)
class Metric:
    name: str
    goal: str = "minimize"
    target: Optional[float] = None


@dataclass(frozen=True)
class Parameter:
    """One searched (or fixed) value. ``name`` is dotted for a nested parameter (``optimizer.lr``)."""

    name: str
    distribution: str
    settings: Mapping[str, Any] = field(default_factory=dict)  # value(s), min, max, q, mu, sigma, a, b…

    def grid_values(self) -> List[Any]:
        """Every value a grid takes, in order."""
        s = self.settings
        if self.distribution == "constant":
            return [s["value"]]
        if self.distribution == "categorical":
            return list(s["values"])
        if self.distribution == "int_uniform":
            return list(range(int(s["min"]), int(s["max"]) + 1))
        if self.distribution == "q_uniform":
            q = float(s.get("q", 1.0))
            count = int(math.floor((float(s["max"]) - float(s["min"])) / q + 1e-9)) + 1
            return [round(float(s["min"]) + i * q, 12) for i in range(count)]
        raise SweepConfigError(f"parameters.{self.name}: a grid cannot enumerate distribution {self.distribution!r}; "
                               f"give it values, or use one of {', '.join(GRID_DISTRIBUTIONS)}")


@dataclass(frozen=True)
class Hyperband:
    """W&B's ``early_terminate: {type: hyperband, ...}``: brackets at ``min_iter * eta**k``
    (or below ``max_iter`` in ``s`` brackets), in the metric's steps."""

    eta: float = 3.0
    min_iter: Optional[int] = None
    max_iter: Optional[int] = None
    s: Optional[int] = None
    strict: bool = False


@dataclass(frozen=True)
class SweepConfig:
    method: str
    parameters: Tuple[Parameter, ...]
    metric: Optional[Metric] = None
    early_terminate: Optional[Hyperband] = None
    run_cap: Optional[int] = None
    program: Optional[str] = None
    command: Tuple[str, ...] = DEFAULT_COMMAND
    name: Optional[str] = None
    description: Optional[str] = None
    project: Optional[str] = None
    entity: Optional[str] = None

    def grid_size(self) -> int:
        """How many combinations a grid sweep has."""
        size = 1
        for parameter in self.parameters:
            size *= len(parameter.grid_values())
        return size


def load(path: str) -> SweepConfig:
    """A sweep configuration file: YAML (``.yaml``/``.yml``) or JSON."""
    return parse(load_raw(path))


def load_raw(path: str) -> Dict[str, Any]:
    """A sweep configuration file's mapping as written (a sweep keeps it so)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if os.path.splitext(path)[1].lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SweepConfigError(f"{path}: not JSON ({exc})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SweepConfigError(f"{path}: not YAML ({exc})") from None
    if not isinstance(data, Mapping):
        raise SweepConfigError(f"{path}: a sweep configuration is a mapping of keys, got {type(data).__name__}")
    return dict(data)


def parse(data: Mapping[str, Any]) -> SweepConfig:
    """Check every key of a sweep configuration (a dict as W&B takes it) and build it."""
    unknown = sorted(set(map(str, data)) - set(TOP_KEYS))
    if unknown:
        raise SweepConfigError(f"unknown key(s) {', '.join(unknown)}; a sweep configuration takes "
                               f"{', '.join(TOP_KEYS)}")
    method = data.get("method")
    if method not in METHODS:
        raise SweepConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    metric = _metric(data.get("metric"))
    parameters = tuple(_parameters(data.get("parameters"), ""))
    if not parameters:
        raise SweepConfigError("parameters: a sweep needs at least one parameter")
    early = _hyperband(data.get("early_terminate"))
    if method == "bayes" and metric is None:
        raise SweepConfigError("method bayes needs a metric: {name, goal}")
    if early is not None and metric is None:
        raise SweepConfigError("early_terminate needs a metric: {name, goal}")
    run_cap = data.get("run_cap")
    if run_cap is not None and (isinstance(run_cap, bool) or not isinstance(run_cap, int) or run_cap < 1):
        raise SweepConfigError(f"run_cap must be a positive whole number, got {run_cap!r}")
    command = _command(data.get("command"))
    program = data.get("program")
    if program is not None and not isinstance(program, str):
        raise SweepConfigError(f"program must be a path, got {program!r}")
    if program is None and "${program}" in command:
        raise SweepConfigError("program is missing: the command runs ${program}")
    config = SweepConfig(method=method, parameters=parameters, metric=metric, early_terminate=early,
                         run_cap=run_cap, program=program, command=command,
                         **{key: _text(data, key) for key in ("name", "description", "project", "entity")})
    if method == "grid":
        for parameter in parameters:
            parameter.grid_values()  # a parameter a grid cannot enumerate is named now
    return config


def _text(data: Mapping[str, Any], key: str) -> Optional[str]:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise SweepConfigError(f"{key} must be text, got {value!r}")
    return value


def _metric(value: Any) -> Optional[Metric]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"metric must be a mapping {{name, goal}}, got {value!r}")
    unknown = sorted(set(map(str, value)) - {"name", "goal", "target"})
    if unknown:
        raise SweepConfigError(f"metric: unknown key(s) {', '.join(unknown)}; it takes name, goal, target")
    name, goal, target = value.get("name"), value.get("goal", "minimize"), value.get("target")
    if not isinstance(name, str) or not name:
        raise SweepConfigError(f"metric.name must name the metric a run logs, got {name!r}")
    if goal not in GOALS:
        raise SweepConfigError(f"metric.goal must be minimize or maximize, got {goal!r}")
    if target is not None and not _number(target):
        raise SweepConfigError(f"metric.target must be a number, got {target!r}")
    return Metric(name, goal, None if target is None else float(target))


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _parameters(value: Any, prefix: str) -> List[Parameter]:
    where = f"parameters{'.' + prefix[:-1] if prefix else ''}"
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"{where} must be a mapping of parameter names, got {value!r}")
    out: List[Parameter] = []
    for name, spec in value.items():
        full = f"{prefix}{name}"
        if not isinstance(spec, Mapping):
            raise SweepConfigError(f"parameters.{full} must be a mapping (value, values, min/max, distribution…), "
                                   f"got {spec!r}")
        if "parameters" in spec:  # a nested group: its values arrive as a dict under this name
            if set(spec) != {"parameters"}:
                raise SweepConfigError(f"parameters.{full}: a nested group takes only parameters")
            out += _parameters(spec["parameters"], full + ".")
            continue
        out.append(_parameter(full, spec))
    return out


def _parameter(name: str, spec: Mapping[str, Any]) -> Parameter:
    where = f"parameters.{name}"
    distribution = spec.get("distribution")
    if distribution is None:  # W&B's defaults
        if "values" in spec:
            distribution = "categorical"
        elif "value" in spec:
            distribution = "constant"
        elif "min" in spec and "max" in spec:
            whole = all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max"))
            distribution = "int_uniform" if whole else "uniform"
        else:
            raise SweepConfigError(f"{where}: give value, values, or min and max (or a distribution)")
    if distribution not in DISTRIBUTIONS:
        raise SweepConfigError(f"{where}: unknown distribution {distribution!r}; W&B's are "
                               f"{', '.join(DISTRIBUTIONS)}")
    needed, optional = DISTRIBUTIONS[distribution]
    settings = {k: v for k, v in spec.items() if k != "distribution"}
    missing = [k for k in needed if k not in settings]
    extra = sorted(set(settings) - set(needed) - set(optional))
    if missing:
        raise SweepConfigError(f"{where}: distribution {distribution} needs {', '.join(missing)}")
    if extra:
        raise SweepConfigError(f"{where}: distribution {distribution} takes "
                               f"{', '.join(needed + optional) or 'nothing else'}, not {', '.join(extra)}")
    _check_settings(where, distribution, settings)
    return Parameter(name, distribution, settings)


def _check_settings(where: str, distribution: str, s: Mapping[str, Any]) -> None:
    if distribution == "categorical":
        values = s["values"]
        if not isinstance(values, (list, tuple)) or not values:
            raise SweepConfigError(f"{where}.values must be a non-empty list, got {values!r}")
        probabilities = s.get("probabilities")
        if probabilities is not None and (not isinstance(probabilities, (list, tuple))
                                          or len(probabilities) != len(values)
                                          or not all(_number(p) and p >= 0 for p in probabilities)
                                          or abs(sum(probabilities) - 1.0) > 1e-6):
            raise SweepConfigError(f"{where}.probabilities must be {len(values)} numbers ≥ 0 that sum to 1")
        return
    for key in ("min", "max", "q", "mu", "sigma", "a", "b"):
        if key in s and not _number(s[key]):
            raise SweepConfigError(f"{where}.{key} must be a number, got {s[key]!r}")
    if "min" in s and s["min"] > s["max"]:
        raise SweepConfigError(f"{where}: min {s['min']} is above max {s['max']}")
    if distribution == "int_uniform" and not all(float(s[k]).is_integer() for k in ("min", "max")):
        raise SweepConfigError(f"{where}: int_uniform takes whole min and max")
    if distribution.endswith("_values") and s["min"] <= 0:
        raise SweepConfigError(f"{where}: {distribution} takes min and max above 0 (they are values, not logs)")
    for key in ("q", "sigma", "a", "b"):
        if key in s and s[key] <= 0:
            raise SweepConfigError(f"{where}.{key} must be above 0, got {s[key]}")


def _hyperband(value: Any) -> Optional[Hyperband]:
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("type") != "hyperband":
        raise SweepConfigError(f"early_terminate: only type hyperband is supported, got {value!r}")
    unknown = sorted(set(map(str, value)) - {"type", "eta", "min_iter", "max_iter", "s", "strict"})
    if unknown:
        raise SweepConfigError(f"early_terminate: unknown key(s) {', '.join(unknown)}; hyperband takes "
                               "min_iter, max_iter, s, eta, strict")
    for key in ("min_iter", "max_iter", "s"):
        item = value.get(key)
        if item is not None and (isinstance(item, bool) or not isinstance(item, int) or item < 1):
            raise SweepConfigError(f"early_terminate.{key} must be a positive whole number, got {item!r}")
    if value.get("min_iter") is None and value.get("max_iter") is None:
        raise SweepConfigError("early_terminate: hyperband needs min_iter, or max_iter with s")
    if value.get("max_iter") is not None and value.get("min_iter") is None and value.get("s") is None:
        raise SweepConfigError("early_terminate: hyperband with max_iter needs s (the number of brackets)")
    eta = value.get("eta", 3)
    if not _number(eta) or eta <= 1:
        raise SweepConfigError(f"early_terminate.eta must be a number above 1, got {eta!r}")
    return Hyperband(eta=float(eta), min_iter=value.get("min_iter"), max_iter=value.get("max_iter"),
                     s=value.get("s"), strict=bool(value.get("strict", False)))


def _command(value: Any) -> Tuple[str, ...]:
    if value is None:
        return DEFAULT_COMMAND
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(part, str) for part in value):
        raise SweepConfigError(f"command must be a list of words, got {value!r}")
    for part in value:
        if part.startswith("${") and part not in MACROS:
            raise SweepConfigError(f"command: unknown macro {part}; W&B's are {', '.join(MACROS)}")
    return tuple(value)
