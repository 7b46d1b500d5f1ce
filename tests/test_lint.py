"""The habits of the house: ruff (pycodestyle, pyflakes, bugbear) is clean on every package and
the tests, and mypy is clean on the framework-free core (settings in pyproject.toml)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name: str) -> str:
    return os.path.join(os.path.dirname(sys.executable), name)


def test_ruff_is_clean():
    done = subprocess.run([_tool("ruff"), "check", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_is_clean_on_the_core():
    done = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
