"""Every entry point's options are visible where a user looks: ``help()`` and ``inspect`` list
them with their defaults, an editor completes them and mypy checks them — all from the one list,
``LogOptions`` and ``StoreOptions``."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from dataclasses import MISSING, fields

import pytest

from unitb.life.keywords import HookKeywords, RunKeywords
from unitb.life.options import UNSUPPORTED, LogOptions
from unitb.store.run_location import StoreOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTION_FIELDS = (*fields(LogOptions), *fields(StoreOptions))


def entry_points():
    from tf_adapter.callback import TFCallback
    from tf_adapter.logger import TFLogger
    from torch_adapter.hook import EnhancedTensorBoardHook
    from torch_adapter.logger import TorchLogger

    return [EnhancedTensorBoardHook, TorchLogger, TFCallback, TFLogger]


@pytest.mark.parametrize("index", range(4))
def test_the_signature_lists_every_option_less_those_refused_with_its_default(index):
    entry = entry_points()[index]
    parameters = inspect.signature(entry).parameters
    assert not [p for p in parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]  # help() lists them
    keyword_only = {p.name: p.default for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    refused = set(UNSUPPORTED.get(entry.__name__, {}))
    expected = {f.name: f.default for f in OPTION_FIELDS if f.name not in refused}
    assert all(f.default is not MISSING for f in OPTION_FIELDS)
    assert keyword_only == expected
    text = __import__("pydoc").render_doc(entry)
    assert "grad_norm_interval: 'int' = 100" in text and "scalar_interval: 'Optional[int]' = None" in text


def test_the_typed_keywords_are_the_dataclasses_fields():
    """``RunKeywords``/``HookKeywords`` type the ``**kwargs``: the same names and types as the fields."""
    def spelt(typed_dict) -> dict:  # the annotations as written (a TypedDict keeps them as forward references)
        return {name: getattr(kind, "__forward_arg__", kind) for name, kind in typed_dict.__annotations__.items()}

    assert spelt(RunKeywords) == {f.name: f.type for f in OPTION_FIELDS}
    hook_refuses = set(UNSUPPORTED["EnhancedTensorBoardHook"])
    assert spelt(HookKeywords) == {f.name: f.type for f in OPTION_FIELDS if f.name not in hook_refuses}


def test_mypy_sees_a_misspelt_or_mistyped_option(tmp_path):
    snippet = tmp_path / "train.py"
    snippet.write_text("from torch_adapter.logger import TorchLogger\n"
                       "from tf_adapter.callback import TFCallback\n"
                       "TorchLogger('runs/x', scalar_intervl=5)\n"
                       "TFCallback('runs/y', scalar_interval='5')\n"
                       "TFCallback('runs/y', scalar_interval=5, profile_steps=(2, 3), backends=('wandb',))\n")
    config = tmp_path / "mypy.ini"
    # The frameworks themselves are not what is checked here: skipped, they cost ~1 min to analyse.
    config.write_text("[mypy]\nignore_missing_imports = True\nfollow_imports = silent\n"
                      "[mypy-torch.*,tensorflow.*,keras.*,mmengine.*,numpy.*,tensorboard.*,PIL.*]\n"
                      "follow_imports = skip\n")
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental",
                           "--cache-dir", str(tmp_path / "cache"), str(snippet)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    errors = [line.split(": error: ")[1] for line in done.stdout.splitlines() if ": error: " in line]
    assert errors == ['Unexpected keyword argument "scalar_intervl" for "TorchLogger"; did you mean '
                      '"scalar_interval"?  [call-arg]',
                      'Argument "scalar_interval" to "TFCallback" has incompatible type "str"; expected "int | None"  '
                      '[arg-type]'], done.stdout
