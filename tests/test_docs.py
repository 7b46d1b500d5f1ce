"""The documentation is checked like code: the site builds with warnings as errors (a broken link,
a missing page or image, an unknown anchor), its reference pages are the code's, the README stays
short, and every code block in the README and the site is valid in its language."""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from typing import Iterator, List, Tuple

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def markdown_files() -> List[str]:
    found = [os.path.join(ROOT, "README.md")]
    for folder, _dirs, files in os.walk(DOCS):
        found += [os.path.join(folder, name) for name in sorted(files) if name.endswith(".md")]
    return found


def code_blocks() -> Iterator[Tuple[str, int, str, str]]:
    """``(file, line, language, code)`` of each fenced block."""
    for path in markdown_files():
        text = open(path, encoding="utf-8").read()
        for match in FENCE.finditer(text):
            yield os.path.relpath(path, ROOT), text[:match.start()].count("\n") + 1, match.group(1), match.group(2)


def test_the_site_builds_strict(tmp_path):
    mkdocs = os.path.join(os.path.dirname(sys.executable), "mkdocs")
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "TFCallback" in api and "Log a plain PyTorch loop" in api  # docstrings, read from the source


def test_the_reference_pages_are_the_code():
    done = subprocess.run([sys.executable, os.path.join(DOCS, "gen_reference.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_reference_page_of_parameters_lists_every_option():
    from unitb.life.options import LogOptions
    from unitb.store.run_location import StoreOptions
    from dataclasses import fields

    page = open(os.path.join(DOCS, "reference", "parameters.md"), encoding="utf-8").read()
    rows = re.findall(r"^\| `(\w+)` \| `[^|]*` \| `([^|]*)` \| (.*) \|$", page, flags=re.M)
    documented = {name: (default, text) for name, default, text in rows}
    for field in (*fields(LogOptions), *fields(StoreOptions)):
        assert field.name in documented, field.name
        default, text = documented[field.name]
        assert default == repr(field.default) or (default == "()" and field.default == ()), field.name
        assert text.strip(), f"{field.name} has no description under its field"


def test_the_readme_is_short_and_points_into_the_site():
    lines = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().splitlines()
    assert len(lines) <= 200
    text = "\n".join(lines)
    for page in ("getting-started.md", "guide-mmpose.md", "guide-keras.md", "sweeps.md"):
        assert f"docs/{page}" in text
    test_command = next(line for line in lines if line.endswith("&& .venv/bin/python -m pytest"))
    assert test_command in open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()  # CI runs it verbatim
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):  # every link of the README reaches its file
        assert target.startswith("https://") or os.path.exists(os.path.join(ROOT, target)), target


BLOCKS = list(code_blocks())
# A block a test runs: the start of its first line -> what it needs defined first (a tiny model and
# its data), and what it must leave (a run folder with train/loss), each run in a fresh folder.
KERAS = """
import numpy as np, keras, unitb
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"); y = x[:, :1]
vx, vy = x[:8], y[:8]
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]); model.compile("sgd", "mse")
"""
TF_LOOP = """
import tensorflow as tf, keras, unitb
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
optimizer = keras.optimizers.SGD(0.01)
images, targets, total_steps = tf.random.normal((8, 4)), tf.random.normal((8, 1)), 6
@tf.function
def train_step(images, targets):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(images) - targets) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    ckpt.step.assign_add(1)
    return {"total": loss}, grads
"""
TORCH = """
import torch, torch_adapter, unitb
model = torch.nn.Linear(4, 1); optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loader = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
loss_fn = torch.nn.functional.mse_loss
step, loss = 1, loss_fn(model(loader[0][0]), loader[0][1])
"""
WROTE = "from unitb import reader\nassert 'train/loss' in reader.scalar_arrays({run!r}), {run!r}\n"
RUN = {
    "model.fit(x, y, validation_data": (KERAS, WROTE.format(run="runs/keras-fit")),
    "import unitb\n\nmodel.fit(": (KERAS, WROTE.format(run="runs/keras-fit")),
    "ckpt = tf.train.Checkpoint(": (TF_LOOP, "logger.close()\n" + WROTE.format(run="runs/yolo")),
    "logger = torch_adapter.TorchLogger(": (TORCH, "logger.close()\n" + WROTE.format(run="runs/torch")),
    "from torch_adapter import TorchLogger": (TORCH, WROTE.format(run="runs/torch")),
    "params = unitb.sweep_params()": (TORCH, "assert optimizer.param_groups[0]['lr'] == 0.01\n"),
    "from unitb import reader": (KERAS + "model.fit(x, y, callbacks=[unitb.TFCallback('runs/keras-fit')], verbose=0)\n",
                                 "assert list(steps) and points['train/loss']\n"),
}
MARK = re.compile(r"<!-- (not run|run by): ([^>]+) -->\s*$")


def runner_of(code: str):
    return next((value for start, value in RUN.items() if code.startswith(start)), None)


def mark_before(where: str, line: int) -> "re.Match | None":
    lines = open(os.path.join(ROOT, where), encoding="utf-8").read().splitlines()
    above = [text for text in lines[:line - 1] if text.strip()]
    return MARK.match(above[-1]) if above else None


@pytest.mark.parametrize("where,line,language,code", BLOCKS, ids=[f"{w}:{n}" for w, n, _, _ in BLOCKS])
def test_each_code_block_is_valid_and_run_or_marked(where, line, language, code):
    """Every Python or shell block is run below, run by a named test or CI, or marked with why it
    cannot run here (a cluster, a GPU, a cloud account); all of them are parsed."""
    if language == "python":
        ast.parse(code)
    elif language in ("bash", "sh", "shell"):
        done = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    elif language == "yaml":
        yaml.safe_load(code)
    else:
        assert language in ("", "text", "sql", "json", "toml"), f"{where}:{line}: a ```{language} block"
    if language in ("python", "bash", "sh", "shell") and runner_of(code) is None:
        mark = mark_before(where, line)
        assert mark is not None, f"{where}:{line}: run it in tests/test_docs.py or mark it <!-- not run: why -->"
        if mark.group(1) == "run by":
            assert os.path.exists(os.path.join(ROOT, mark.group(2).strip())), mark.group(0)


@pytest.mark.parametrize("framework", ["tensorflow", "torch"])
def test_the_blocks_that_train_run_as_written(tmp_path, framework):
    """One interpreter a framework: each block in a fresh folder, after what it needs defined."""
    chosen = [(where, line, code) for where, line, language, code in BLOCKS if runner_of(code)
              and (("torch" in runner_of(code)[0]) == (framework == "torch"))]
    assert len(chosen) >= 3
    script = ["import os, sys"]
    for index, (where, line, code) in enumerate(chosen):
        prelude, check = runner_of(code)
        folder = tmp_path / f"block{index}"
        folder.mkdir()
        body = prelude + code + "\n" + check
        script.append(f"os.chdir({str(folder)!r}); print({f'{where}:{line}'!r}, flush=True)")
        script.append(f"exec(compile({body!r}, {f'{where}:{line}'!r}, 'exec'), {{'__name__': '__main__'}})")
    done = subprocess.run([sys.executable, "-c", "\n".join(script)], capture_output=True, text=True, timeout=600,
                          cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def api_objects() -> List[Tuple[str, object]]:
    """``(name, object)`` of each class, function and listed member the API page shows."""
    import importlib

    page = open(os.path.join(DOCS, "reference", "api.md"), encoding="utf-8").read()
    shown = []
    for match in re.finditer(r"^::: ([\w.]+)\n(?:    options:\n      members: (\[[^\]]*\]|false)\n)?", page, re.M):
        module_name, _, name = match.group(1).rpartition(".")
        thing = getattr(importlib.import_module(module_name), name)
        shown.append((match.group(1), thing))
        members = match.group(2)
        if members and members != "false":
            shown += [(f"{match.group(1)}.{m.strip()}", getattr(thing, m.strip())) for m in members[1:-1].split(",")]
    return shown


def test_what_the_api_page_shows_says_its_arguments_returns_and_errors():
    import inspect

    shown = api_objects()
    assert len(shown) > 30
    missing = []
    for name, thing in shown:
        doc = inspect.getdoc(thing) or ""
        if not doc:
            missing.append(f"{name}: no docstring")
            continue
        if inspect.isclass(thing):
            if issubclass(thing, tuple):  # a NamedTuple: its fields are its documentation
                continue
            needs_args = bool(inspect.signature(thing).parameters)
            init = thing.__init__
            source = inspect.getsource(init) if inspect.isfunction(init) else ""
            needs_raises = "raise ValueError" in source or "RunLife(" in source  # RunLife checks the options
            needs_returns = False
        else:
            signature = inspect.signature(thing)
            needs_args = any(p not in ("self", "cls") for p in signature.parameters)
            needs_raises = False
            needs_returns = signature.return_annotation not in (None, "None", inspect.Signature.empty)
        for needed, section in ((needs_args, "Args:"), (needs_returns, "Returns:"), (needs_raises, "Raises:")):
            if needed and section not in doc:
                missing.append(f"{name}: no {section}")
    assert missing == []
