"""The packages' import graph, built from the source (imports inside functions included): no
module reaches itself again, so none needs an import placed inside a function to load."""
import ast
import os
import subprocess
import sys
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("unitb", "torch_adapter", "tf_adapter")
sys.path.insert(0, os.path.join(ROOT, "docs"))
from module_map import ROOMS  # noqa: E402


def _modules() -> Dict[str, str]:
    found = {}
    for package in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return found


def import_graph() -> Dict[str, Set[str]]:
    """``{module: the modules of these packages it imports}``. ``from p import m`` is an arrow to
    ``p.m`` when that is a module, else to ``p``."""
    modules = _modules()
    graph: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for node in ast.walk(tree):
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the walk found the packages
    assert cycles(graph) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The check can fail: two modules that import each other inside functions are a cycle."""
    a = {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": {"p.a"}}
    assert cycles(a) == [["p.a", "p.b"]]
    graph = import_graph()
    # set_aside.py imports the event-file listing at module level; the listing never imports set_aside.
    assert "unitb.files.event_files" in graph["unitb.folder.set_aside"]
    assert "unitb.folder.set_aside" not in graph["unitb.files.event_files"]


# The core's rooms, lowest first (docs/module_map.py, which draws them): a module imports only
# from its own room, a lower one, or the leaves at the top.
LEAVES = ("unitb.schema", "unitb.notices")


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "unitb" and len(parts) > 2 else module


def test_arrows_between_rooms_run_one_way():
    graph = import_graph()
    rooms = [name for name in os.listdir(os.path.join(ROOT, "unitb"))
             if os.path.isfile(os.path.join(ROOT, "unitb", name, "__init__.py"))]
    assert sorted(rooms) == sorted(ROOMS)  # a new room takes its place in the order here
    upward = []
    for module, targets in graph.items():
        if _room(module) not in ROOMS:
            continue
        for target in targets:
            if target in LEAVES or _room(target) == _room(module):
                continue
            if _room(target) not in ROOMS or ROOMS.index(_room(target)) > ROOMS.index(_room(module)):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_public_paths_keep_working():
    import unitb
    from unitb import reader, resume, schema
    from unitb.folder import set_aside
    from unitb.read import run_reader

    assert reader.read_run is run_reader.read_run and resume.restore is set_aside.restore
    assert schema.TRAIN_LOSS == "train/loss"
    assert dir(unitb) == sorted(unitb.__all__)
    assert set(unitb.__all__) == {"schema", "reader", "resume", "UnitbWarning", "FolderBusy", "sweep_params", "alert",
                                  "EnhancedTensorBoardHook",
                                  "TorchLogger", "TFCallback", "TFLogger", "CheckpointManager", "runs", "scalars"}
    from unitb.query import tables

    assert unitb.runs is tables.runs and unitb.scalars is tables.scalars


def test_the_core_imports_no_adapter():
    graph = import_graph()
    core = [name for name in graph if name.split(".")[0] == "unitb"]
    leaks = {name: sorted(t for t in graph[name] if t.split(".")[0] != "unitb") for name in core}
    assert {name: targets for name, targets in leaks.items() if targets} == {}


def test_the_module_maps_are_the_tree():
    """docs/code-layout.md's map and docs/DESIGN.md's module tables are made from the tree: they cannot
    disagree with it, or with each other."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "module_map.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_rooms_that_write_run_folders_list_event_files_without_the_reader():
    """Folders, stores and the run's life need which files are event files, not the reading
    API: that sits in the lowest room (``files/event_files.py``), so they never load the reader."""
    graph = import_graph()
    users = sorted(module for module, imports in graph.items()
                   if module.startswith(("unitb.folder.", "unitb.store.", "unitb.life."))
                   and "unitb.read.run_reader" in imports)
    assert users == []


ENTRY_POINTS = ("torch_adapter/logger.py", "torch_adapter/hook.py", "torch_adapter/recorder.py",
                "tf_adapter/logger.py", "tf_adapter/callback.py", "tf_adapter/fit_points.py")
# What a run's life does once, in unitb/life/lifecycle.py: an entry point that spells one of these
# does again what RunLife does (the logdir, the resume refusal, the framework's hparam, the
# scalars' due check and write, the profiler's window).
LIFECYCLE_WORDS = {"makedirs", "check_location", "FolderBusy", "write_train_step", "scalar_policy", "framework",
                   "profiler", "refused"}


def _spelled(path: str) -> Set[str]:
    """Names, attributes and string constants of a module's code (docstrings and comments left out)."""
    tree = ast.parse(open(os.path.join(ROOT, path)).read())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    words: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words.add(node.value)
        elif isinstance(node, ast.alias):
            words.add(node.name.rsplit(".", 1)[-1])
    return words


def test_entry_points_translate_and_leave_the_run_s_life_to_one_object():
    found = {path: sorted(_spelled(path) & LIFECYCLE_WORDS) for path in ENTRY_POINTS}
    assert {path: words for path, words in found.items() if words} == {}
