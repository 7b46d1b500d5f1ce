"""Each library's private names live in one module per library (torch_adapter/torch_internals.py,
torch_adapter/mmengine_internals.py, tf_adapter/tf_internals.py, tf_adapter/keras_internals.py).
These tests fail, naming what changed, when an installed release moves one of them, and when
code outside a fence starts using one."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The private names each fence holds: no other module may spell them.
FENCED = {
    "torch_adapter/torch_internals.py": ("_foreach_norm", "_orig_mod", "_get_file_writer", "_file_name",
                                         "_AsyncWriterThread", "_get_default_store"),
    "torch_adapter/mmengine_internals.py": ("_tensorboard", "_save_dir", "_accumulative_counts", "_enable_normalize",
                                            "_channel_conversion", "_statistics_methods"),
    "tf_adapter/tf_internals.py": ("_resource", "gen_summary_ops", "coordination_service", "set_config_key_value",
                                   "get_config_key_value", "delete_config_key_value"),
    "tf_adapter/keras_internals.py": ("_learning_rate", "_iterations", "_accumulated_gradients",
                                      "_get_variable_index", "_all_reduce_sum_gradients"),
}


def _message(module, missing) -> str:
    versions = ", ".join(f"{lib} {' / '.join(v)}" for lib, v in module.CHECKED_VERSIONS.items()) \
        if isinstance(module.CHECKED_VERSIONS, dict) else f"mmengine {' / '.join(module.CHECKED_VERSIONS)}"
    return f"{module.__name__} was checked with {versions}; the installed release lacks {missing}: update it"


def test_torch_and_tensorboard_internals_are_there():
    from torch_adapter import torch_internals

    missing = torch_internals.missing_internals()
    assert missing == [], _message(torch_internals, missing)


def test_mmengine_internals_are_there():
    from torch_adapter import mmengine_internals

    missing = mmengine_internals.missing_class_internals()
    assert missing == [], _message(mmengine_internals, missing)


def test_tensorflow_internals_are_there(tmp_path):
    from tf_adapter import tf_internals
    from tf_adapter.sink import TFSummarySink

    sink = TFSummarySink(str(tmp_path))
    missing = tf_internals.missing_internals(sink.writer)
    sink.close()
    assert missing == [], _message(tf_internals, missing)


def test_keras_internals_are_there():
    from tf_adapter import keras_internals

    missing = keras_internals.missing_internals()
    assert missing == [], _message(keras_internals, missing)


def _spelled(path: str, names) -> list:
    """Where ``path`` uses one of ``names`` as an attribute, an imported name or a string."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append((node.lineno, node.value))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[-1] in names]
    return found


@pytest.mark.parametrize("package", ["unitb", "torch_adapter", "tf_adapter"])
def test_no_private_name_outside_its_fence(package):
    names = {name for fenced in FENCED.values() for name in fenced}
    leaks = {}
    for folder, _dirs, files in os.walk(os.path.join(ROOT, package)):
        for file in files:
            rel = os.path.relpath(os.path.join(folder, file), ROOT)
            if file.endswith(".py") and rel not in FENCED:
                found = _spelled(os.path.join(ROOT, rel), names)
                if found:
                    leaks[rel] = found
    assert leaks == {}


def test_the_leak_check_can_fail(tmp_path):
    leaky = tmp_path / "leaky.py"
    leaky.write_text("def f(opt):\n    return opt._iterations + getattr(opt, '_learning_rate')\n")
    assert _spelled(str(leaky), {"_iterations", "_learning_rate"}) == [(2, "_iterations"), (2, "_learning_rate")]
