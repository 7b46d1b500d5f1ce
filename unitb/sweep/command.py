"""A trial's command line from the sweep's ``command`` and W&B's macros.

``${env}`` is ``/usr/bin/env``; ``${interpreter}`` the Python the agent runs on (W&B says
``python``: the agent's own keeps a virtual environment's packages); ``${program}`` the sweep's
program; ``${args}`` ``--name=value`` for each parameter (a nested one by its dotted name,
``--optimizer.lr=0.01``); ``${args_no_hyphens}`` ``name=value`` (what mmengine's
``--cfg-options`` takes); ``${args_no_boolean_flags}`` ``--name`` for a true flag and nothing for
a false one; ``${args_json}`` the parameters as one JSON word (nested as objects);
``${args_json_file}`` the path of a file holding that JSON.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Mapping, Optional

from unitb.sweep.config import SweepConfig


def nested(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Dotted names as nested objects (``{"optimizer.lr": 0.1}`` -> ``{"optimizer": {"lr": 0.1}}``)."""
    out: Dict[str, Any] = {}
    for name, value in values.items():
        *groups, last = name.split(".")
        target = out
        for group in groups:
            target = target.setdefault(group, {})
        target[last] = value
    return out


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def command_line(config: SweepConfig, values: Mapping[str, Any], args_json_file: Optional[str] = None,
                 interpreter: Optional[str] = None) -> List[str]:
    """The words a trial with parameter ``values`` runs (``args_json_file``: where ``${args_json_file}``
    points; the caller writes :func:`nested` ``values`` there)."""
    words: List[str] = []
    for part in config.command:
        if part == "${env}":
            words.append("/usr/bin/env")
        elif part == "${interpreter}":
            words.append(interpreter or sys.executable)
        elif part == "${program}":
            words.append(str(config.program))
        elif part == "${args}":
            words += [f"--{name}={_text(value)}" for name, value in values.items()]
        elif part == "${args_no_hyphens}":
            words += [f"{name}={_text(value)}" for name, value in values.items()]
        elif part == "${args_no_boolean_flags}":
            words += [f"--{name}" if value is True else f"--{name}={_text(value)}"
                      for name, value in values.items() if value is not False]
        elif part == "${args_json}":
            words.append(json.dumps(nested(values)))
        elif part == "${args_json_file}":
            if args_json_file is None:
                raise ValueError("the command takes ${args_json_file}: give the file's path")
            words.append(args_json_file)
        else:
            words.append(part)
    return words
