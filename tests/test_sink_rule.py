"""A sink (torch_adapter/sink.py, tf_adapter/sink.py) is the only code that opens or calls a
TensorBoard writer: ``SummaryWriter``, ``tf.summary``, ``add_graph``. Everything else hands it
host values (or, inside a ``tf.function``, the tag mapping's pairs). A library's fence
(``*_internals.py``) may name the writer class to check the private names it relies on."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINKS = {os.path.join("torch_adapter", "sink.py"), os.path.join("tf_adapter", "sink.py")}


def writer_calls(path: str) -> list:
    """Where ``path`` uses a TensorBoard writer: ``tf.summary.*``, ``SummaryWriter``, ``add_graph``,
    ``create_file_writer``, or imports ``torch.utils.tensorboard``."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr == "summary" and isinstance(node.value, ast.Name) and node.value.id == "tf":
                found.append((node.lineno, "tf.summary"))
            elif node.attr in ("add_graph", "create_file_writer"):
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Name) and node.id == "SummaryWriter":
            found.append((node.lineno, "SummaryWriter"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch.utils.tensorboard"):
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", ["unitb", "torch_adapter", "tf_adapter"])
def test_only_sinks_touch_a_writer(package):
    outside = {}
    for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), ROOT)
            if name.endswith(".py") and rel not in SINKS and not name.endswith("_internals.py"):
                found = writer_calls(os.path.join(ROOT, rel))
                if found:
                    outside[rel] = found
    assert outside == {}


def test_the_rule_check_can_fail(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import tensorflow as tf\n"
                      "from torch.utils.tensorboard import SummaryWriter\n"
                      "def f(w, m):\n    tf.summary.scalar('a', 1.0)\n    w.add_graph(m, None)\n")
    assert sorted(what for _line, what in writer_calls(str(module))) == [
        "add_graph", "tf.summary", "torch.utils.tensorboard"]
