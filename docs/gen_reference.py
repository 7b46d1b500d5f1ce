"""The reference pages of the documentation site, made from the code so they cannot drift.

    python docs/gen_reference.py           # rewrite docs/reference/{schema,parameters,cli}.md
    python docs/gen_reference.py --check   # exit 1 if a page differs from the code (a test runs this)

- schema.md: the tag families of ``unitb/schema.py`` (``FAMILIES``, ``CORE_FAMILIES``, ``HPARAM_KEYS``);
- parameters.md: every field of ``LogOptions`` and ``StoreOptions`` with its type, default and
  the text below it in the source (attribute docstrings: editors show them too), then each entry
  point's own parameters, from its ``__init__``;
- cli.md: each ``unitb`` command's ``--help`` page, from its argparse parser.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import io
import os
import sys
from typing import Dict, List, Tuple

from generated_files import refresh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "reference")
HEADER = "<!-- Made by docs/gen_reference.py from the code: edit the code, then run it. -->\n\n"
ENTRY_POINTS = (
    ("EnhancedTensorBoardHook", "torch_adapter/hook.py", "an mmengine config's `custom_hooks`"),
    ("TorchLogger", "torch_adapter/logger.py", "a plain PyTorch loop"),
    ("TFCallback", "tf_adapter/callback.py", "Keras `model.fit(callbacks=[...])`"),
    ("TFLogger", "tf_adapter/logger.py", "a custom TensorFlow loop"),
)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def class_in(path: str, class_name: str) -> ast.ClassDef:
    """The class ``class_name`` of the source file ``path``, parsed (nothing imported)."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    return cls


def documented_fields(path: str, class_name: str) -> List[Tuple[str, str, str, str]]:
    """``(name, type, default, text)`` of each annotated field of a dataclass in ``path``, the
    text being the string literal right below the field."""
    cls = class_in(path, class_name)
    out = []
    body = cls.body
    for index, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            after = body[index + 1] if index + 1 < len(body) else None
            text = after.value.value if (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                                         and isinstance(after.value.value, str)) else ""
            default = ast.unparse(node.value) if node.value is not None else ""
            out.append((node.target.id, ast.unparse(node.annotation), default, text))
    return out


def own_parameters(path: str, class_name: str) -> List[Tuple[str, str]]:
    """``(name, default)`` of the parameters an entry point's ``__init__`` names itself."""
    (init,) = [n for n in class_in(path, class_name).body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    args = init.args.args[1:]
    defaults = [None] * (len(args) - len(init.args.defaults)) + list(init.args.defaults)
    return [(a.arg, "" if d is None else ast.unparse(d)) for a, d in zip(args, defaults)]


def parameters_page() -> str:
    lines = [HEADER + "# Parameters", "",
             "Every entry point — `EnhancedTensorBoardHook`, `TorchLogger`, `TFCallback`, `TFLogger` — takes these "
             "keywords, validated once (a bad value is a `ValueError` naming the parameter, at construction). "
             "`help(unitb.TFCallback)` lists them with their defaults.", "",
             "## Logging (`LogOptions`)", "", "| parameter | type | default | what it does |", "|---|---|---|---|"]
    for name, kind, default, text in documented_fields("unitb/life/options.py", "LogOptions"):
        lines.append(f"| `{name}` | `{kind}` | `{default}` | {_cell(text)} |")
    lines += ["", "## Runs in object storage (`StoreOptions`)", "",
              "| parameter | type | default | what it does |", "|---|---|---|---|"]
    for name, kind, default, text in documented_fields("unitb/store/run_location.py", "StoreOptions"):
        lines.append(f"| `{name}` | `{kind}` | `{default}` | {_cell(text)} |")
    lines += ["", "## Each entry point's own parameters", ""]
    for name, path, where in ENTRY_POINTS:
        own = ", ".join(f"`{p}={d}`" if d else f"`{p}`" for p, d in own_parameters(path, name))
        lines.append(f"- **`{name}`** ({where}, `{path}`): {own}.")
    return "\n".join(lines) + "\n"


def schema_page() -> str:
    sys.path.insert(0, ROOT)
    from unitb import schema

    lines = [HEADER + "# Schema: the tag families", "",
             "Every tag an entry point writes belongs to one of these families (`unitb/schema.py`, checked in "
             "this order; `unitb diff` compares runs family by family). What each tag holds and when it is "
             "written: [The schema](../schema.md).", "",
             "| family | kind | tags (regular expression) | in every run |", "|---|---|---|---|"]
    for family, regex, kind in schema.FAMILIES:
        core = "yes" if family in schema.CORE_FAMILIES else ""
        lines.append(f"| `{family}` | {kind} | `{_cell(regex)}` | {core} |")
    lines += ["", "The hyperparameters every entry point fills under the same names, so runs of both frameworks "
              "line up in the HPARAMS tab: " + ", ".join(f"`{k}`" for k in schema.HPARAM_KEYS) + "."]
    return "\n".join(lines) + "\n"


def _subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_page() -> str:
    sys.path.insert(0, ROOT)
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: one width, one page
    from unitb.commands.cli import build_parser

    parser = build_parser()
    lines = [HEADER + "# The `unitb` command", "", "Each command's `--help`, as it prints it.", ""]

    def add(title: str, each: argparse.ArgumentParser, depth: int) -> None:
        lines.extend([f"{'#' * depth} `{title}`", "", "```text", each.format_help().rstrip(), "```", ""])
        for name, child in _subparsers(each).items():
            add(f"{title} {name}", child, min(depth + 1, 3))

    parser.prog = "unitb"
    add("unitb", parser, 2)
    return "\n".join(lines).rstrip() + "\n"


def pages() -> Dict[str, str]:
    with contextlib.redirect_stdout(io.StringIO()):
        return {"schema.md": schema_page(), "parameters.md": parameters_page(), "cli.md": cli_page()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page differs from the code")
    args = parser.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    fresh = {os.path.join(OUT, name): text for name, text in pages().items()}
    return refresh(fresh, args.check, "python docs/gen_reference.py")


if __name__ == "__main__":
    sys.exit(main())
