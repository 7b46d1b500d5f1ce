"""The module map of docs/code-layout.md ("Layout of the code") and docs/DESIGN.md ("The modules, by
room"), made from the tree itself: each room's and each module's docstring says what it is for.

    python docs/module_map.py           # rewrite both maps from the tree
    python docs/module_map.py --check   # exit 1 if either map differs from the tree (a test runs this)

A map sits between ``<!-- module-map -->`` and ``<!-- /module-map -->`` in each file.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from typing import List, Tuple

from generated_files import refresh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("unitb", "torch_adapter", "tf_adapter")
START, END = "<!-- module-map -->", "<!-- /module-map -->"
# The core's rooms, lowest first: a module imports from its own room, a lower one, or the top of
# the package (tests/test_import_graph.py holds every arrow to this order).
ROOMS = ("files", "read", "query", "write", "folder", "backends", "store", "life", "sweep", "commands")


def first_sentence(path: str) -> str:
    """A module's docstring up to its first full stop (or its first paragraph)."""
    with open(path, encoding="utf-8") as handle:
        doc = ast.get_docstring(ast.parse(handle.read())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    match = re.match(r"(.+?\.)(\s|$)", paragraph)
    return (match.group(1) if match else paragraph).rstrip(".")


def rooms() -> List[Tuple[str, str, List[Tuple[str, str]]]]:
    """``[(folder, what it is for, [(module file, what it is for)])]``, package by package,
    the top of each package first."""
    found = []
    for package in PACKAGES:
        base = os.path.join(ROOT, package)
        inner = [name for name in os.listdir(base) if os.path.isfile(os.path.join(base, name, "__init__.py"))]
        inner.sort(key=lambda name: (ROOMS.index(name) if name in ROOMS else len(ROOMS), name))
        folders = [package] + [f"{package}/{name}" for name in inner]
        for folder in folders:
            path = os.path.join(ROOT, folder)
            modules = sorted(name for name in os.listdir(path) if name.endswith(".py") and name != "__init__.py")
            found.append((folder + "/", first_sentence(os.path.join(path, "__init__.py")),
                          [(name, first_sentence(os.path.join(path, name))) for name in modules]))
    return found


def readme_map() -> str:
    """The compact map: each folder, what it is for, its modules' names."""
    lines = ["```"]
    for folder, what, modules in rooms():
        lines.append(f"{folder:<24}{what.split(': ')[0]}")
        names = " · ".join(name[:-3] for name, _ in modules)
        while names:
            cut = names[:92].rfind(" · ") if len(names) > 92 else len(names)
            lines.append(" " * 26 + names[:cut])
            names = names[cut + 3:] if len(names) > 92 else ""
    lines.append("```")
    return "\n".join(lines)


def design_map() -> str:
    """The full map: a table per package, a row per module with its docstring's first sentence."""
    lines = []
    for folder, what, modules in rooms():
        lines += [f"**`{folder}`** — {what}.", "", "| module | what it is for |", "|---|---|"]
        lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in modules]
        lines.append("")
    return "\n".join(lines).rstrip()


def _replace(text: str, body: str, path: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} … {END} block")
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a map differs from the tree")
    args = parser.parse_args(argv)
    fresh = {}
    for rel, body in (("code-layout.md", readme_map()), ("DESIGN.md", design_map())):
        path = os.path.join(ROOT, "docs", rel)
        with open(path, encoding="utf-8") as handle:
            fresh[path] = _replace(handle.read(), body, rel)
    return refresh(fresh, args.check, "python docs/module_map.py")


if __name__ == "__main__":
    sys.exit(main())
