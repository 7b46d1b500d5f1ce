"""A sweep's configuration in W&B's own format, read and checked before any trial starts.

A team's ``sweep.yaml`` (or JSON) is taken as W&B documents it: ``method`` (grid, random, bayes),
``metric`` (name, goal, target), ``parameters`` (``value``, ``values``, ``min``/``max`` and the
``distribution`` names W&B defines, nested ``parameters`` too), ``early_terminate`` (hyperband),
``run_cap``, ``program`` and ``command`` with W&B's macros; ``name``, ``description``, ``project``,
``entity``, ``apiVersion`` and ``kind`` are kept as given. ``controller`` and ``metric.impute``
are taken and said once (unitb's controller is always local; a failed trial is never imputed a
value). What W&B's own schema refuses — a parameter name that is not a flag, ``int_uniform``
over non-integers — is refused here too, and so is what only W&B's servers run (Launch jobs,
custom schedulers): a :class:`SweepConfigError` that names it and where it stands, so nothing
is half understood.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
TOP_KEYS = ("program", "method", "metric", "parameters", "early_terminate", "run_cap", "command", "name",
            "description", "project", "entity", "controller", "apiVersion", "kind")
# Keys of W&B's schema that only its servers act on.
SERVER_KEYS = ("job", "image_uri", "scheduler", "metrics")
# What W&B's schema takes as a parameter's name: a command-line flag.
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
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
          "${args_json_file}", "${args_no_boolean_flags}", "${args_no_equals}", "${args_append_hydra}",
          "${args_override_hydra}")
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
    """One searched (or fixed) value. ``name`` is dotted for a nested parameter (``optimizer.lr``);
    ``path`` tells a nested one (``("optimizer", "lr")``) from a name with a dot in it
    (``("optimizer.lr",)``, as mmengine's ``--cfg-options`` takes them)."""

    name: str
    distribution: str
    settings: Mapping[str, Any] = field(default_factory=dict)  # value(s), min, max, q, mu, sigma, a, b…
    path: Tuple[str, ...] = ()

    @property
    def keys(self) -> Tuple[str, ...]:
        return self.path or (self.name,)

    @property
    def searched(self) -> bool:
        """Whether the sweep varies it (a constant is handed over, not searched)."""
        return self.distribution != "constant"

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
            q = s.get("q", 1.0)
            count = int(math.floor((float(s["max"]) - float(s["min"])) / q + 1e-9)) + 1
            return [quantized(float(s["min"]) + i * q, q) for i in range(count)]
        raise SweepConfigError(f"parameters.{self.name}: a grid cannot enumerate distribution {self.distribution!r}; "
                               f"give it values, or use one of {', '.join(GRID_DISTRIBUTIONS)}")


def quantized(value: float, q: float) -> float:
    """``value`` rounded to a multiple of ``q``, as W&B rounds its ``q_*`` distributions: a whole
    number (an ``int``) when ``q`` is written as one (``q: 8``), as W&B's agent hands it over."""
    rounded = round(value / q) * q
    return int(rounded) if isinstance(q, int) and not isinstance(q, bool) else round(rounded, 12)


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
    notes: Tuple[str, ...] = ()  # what was taken from W&B's format but means nothing here, said once

    def arguments(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """A trial's values as W&B's agent hands them to a run: by top-level name, a nested
        group as a dict (``{"optimizer": {"lr": 0.01}}``), a dotted name as it is."""
        paths = {parameter.name: parameter.keys for parameter in self.parameters}
        out: Dict[str, Any] = {}
        for name, value in values.items():
            *groups, last = paths.get(name, (name,))
            target = out
            for group in groups:
                target = target.setdefault(group, {})
            target[last] = value
        return out

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
    served = sorted(set(map(str, data)) & set(SERVER_KEYS))
    if served:
        raise SweepConfigError(f"{', '.join(served)}: W&B's servers run these (Launch jobs, custom schedulers, "
                               "several metrics); unitb's local controller runs program/command with one metric")
    unknown = sorted(set(map(str, data)) - set(TOP_KEYS))
    if unknown:
        raise SweepConfigError(f"unknown key(s) {', '.join(unknown)}; a sweep configuration takes "
                               f"{', '.join(TOP_KEYS)}")
    method = data.get("method")
    if method not in METHODS:
        raise SweepConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    notes: List[str] = []
    metric = _metric(data.get("metric"), notes)
    _controller(data.get("controller"), notes)
    parameters = tuple(_parameters(data.get("parameters"), ()))
    _no_twice(parameters)
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
                         run_cap=run_cap, program=program, command=command, notes=tuple(notes),
                         **{key: _text(data, key) for key in ("name", "description", "project", "entity")})
    for key in ("apiVersion", "kind"):
        _text(data, key)
    if method == "grid":
        for parameter in parameters:
            parameter.grid_values()  # a parameter a grid cannot enumerate is named now
    return config


def _text(data: Mapping[str, Any], key: str) -> Optional[str]:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise SweepConfigError(f"{key} must be text, got {value!r}")
    return value


def _controller(value: Any, notes: List[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping) or value.get("type") not in ("local", "cloud") or set(value) != {"type"}:
        raise SweepConfigError(f"controller must be {{type: local}} (or cloud), got {value!r}")
    notes.append(f"controller: {value['type']} taken; unitb's controller is always local (the agents and the study)")


def _metric(value: Any, notes: List[str]) -> Optional[Metric]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"metric must be a mapping {{name, goal}}, got {value!r}")
    unknown = sorted(set(map(str, value)) - {"name", "goal", "target", "impute", "impute_while_running"})
    if unknown:
        raise SweepConfigError(f"metric: unknown key(s) {', '.join(unknown)}; it takes name, goal, target, impute, "
                               "impute_while_running")
    for key, allowed in (("impute", ("latest", "best", "worst")),
                         ("impute_while_running", ("latest", "best", "worst", "false"))):
        if key in value:
            if value[key] not in allowed:
                raise SweepConfigError(f"metric.{key} must be one of {', '.join(allowed)}, got {value[key]!r}")
            notes.append(f"metric.{key}: {value[key]} taken; unitb gives the sampler no value for a trial that "
                         "failed or still runs (Optuna leaves failed trials out)")
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


def _parameters(value: Any, path: Tuple[str, ...]) -> List[Parameter]:
    where = ".".join(("parameters", *path))
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"{where} must be a mapping of parameter names, got {value!r}")
    if not value and path:
        raise SweepConfigError(f"{where}: a nested group needs at least one parameter")
    out: List[Parameter] = []
    for name, spec in value.items():
        full = ".".join((*path, str(name)))
        if not isinstance(name, str) or not PARAMETER_NAME.match(name):
            raise SweepConfigError(f"{where}: {name!r} is not a parameter name W&B takes: a trial gets it as a flag "
                                   "(--name=value), so letters, digits, '_', '.', '-', not starting with a digit")
        if not isinstance(spec, Mapping):
            raise SweepConfigError(f"parameters.{full} must be a mapping (value, values, min/max, distribution…), "
                                   f"got {spec!r}")
        if "parameters" in spec:  # a nested group: its values arrive as a dict under this name
            if set(spec) != {"parameters"}:
                raise SweepConfigError(f"parameters.{full}: a nested group takes only parameters")
            out += _parameters(spec["parameters"], (*path, name))
            continue
        found = _parameter(full, spec)
        out.append(Parameter(found.name, found.distribution, found.settings, (*path, name) if path else ()))
    return out


def _no_twice(parameters: Tuple[Parameter, ...]) -> None:
    seen: Dict[str, Parameter] = {}
    for parameter in parameters:
        if parameter.name in seen:
            raise SweepConfigError(f"parameters.{parameter.name} is given twice: as a nested group and as a name "
                                   "with a dot")
        seen[parameter.name] = parameter


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
    if distribution == "int_uniform" and not all(isinstance(s[k], int) for k in ("min", "max")):
        raise SweepConfigError(f"{where}: int_uniform takes integer min and max (as W&B's schema does), got "
                               f"{s['min']!r} and {s['max']!r}")
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
