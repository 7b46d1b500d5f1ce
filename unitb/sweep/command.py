"""A trial's command line from the sweep's ``command`` and W&B's macros.

The arguments are exactly the words W&B's agent builds, from the values as it hands them to a
run (:meth:`SweepConfig.arguments`: a nested group is one dict-valued argument), each value
written as Python's ``str`` writes it (``True``, ``{'lr': 0.01}``), as W&B's agent does.

``${env}`` is ``/usr/bin/env``; ``${interpreter}`` the Python the agent runs on (W&B says
``python``: the agent's own keeps a virtual environment's packages); ``${program}`` the sweep's
program; ``${args}`` ``--name=value`` for each argument; ``${args_no_hyphens}`` ``name=value``
(what mmengine's ``--cfg-options`` takes); ``${args_no_equals}`` ``--name value``;
``${args_append_hydra}`` / ``${args_override_hydra}`` ``+name=value`` / ``++name=value``;
``${args_no_boolean_flags}`` ``--name`` for a true flag and nothing for a false one;
``${args_json}`` the arguments as one JSON word; ``${args_json_file}`` the path of a file
holding that JSON.
"""
from __future__ import annotations

import json
import sys
from typing import Any, List, Mapping, Optional

from unitb.sweep.config import SweepConfig




def command_line(config: SweepConfig, values: Mapping[str, Any], args_json_file: Optional[str] = None,
                 interpreter: Optional[str] = None) -> List[str]:
    """The words a trial with parameter ``values`` runs (``args_json_file``: where ``${args_json_file}``
    points; the caller writes ``config.arguments(values)`` there)."""
    arguments = config.arguments(values)
    words: List[str] = []
    for part in config.command:
        if part == "${env}":
            words.append("/usr/bin/env")
        elif part == "${interpreter}":
            words.append(interpreter or sys.executable)
        elif part == "${program}":
            words.append(str(config.program))
        elif part == "${args}":
            words += [f"--{name}={value}" for name, value in arguments.items()]
        elif part == "${args_no_hyphens}":
            words += [f"{name}={value}" for name, value in arguments.items()]
        elif part == "${args_no_equals}":
            words += [word for name, value in arguments.items() for word in (f"--{name}", str(value))]
        elif part in ("${args_append_hydra}", "${args_override_hydra}"):
            sign = "+" if part == "${args_append_hydra}" else "++"
            words += [f"{sign}{name}={value}" for name, value in arguments.items()]
        elif part == "${args_no_boolean_flags}":
            words += [f"--{name}" if value is True else f"--{name}={value}"
                      for name, value in arguments.items() if not isinstance(value, bool) or value]
        elif part == "${args_json}":
            words.append(json.dumps(arguments))
        elif part == "${args_json_file}":
            if args_json_file is None:
                raise ValueError("the command takes ${args_json_file}: give the file's path")
            words.append(args_json_file)
        else:
            words.append(part)
    return words
