"""One rule, in the core, for which of a step's values is train/loss: the same on all four entry
points and in every process (it used to depend on the hash seed in TFLogger)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from unitb import UnitbWarning, reader
from unitb.train_step import split_train_values

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_total_is_chosen_by_a_fixed_order_and_nothing_is_dropped():
    split = split_train_values({"total": 2.0, "loss_kpt": 3.0, "acc": 0.5, "loss": 1.0})
    assert (split.total_name, split.total) == ("loss", 1.0)
    assert split.components == {"total": 2.0, "loss_kpt": 3.0} and split.metrics == {"acc": 0.5}
    assert split.other_totals == ("total",)
    split = split_train_values(losses={"total": 2.0, "total_loss": 4.0, "coord": 1.0})
    assert (split.total_name, split.total, split.other_totals) == ("total_loss", 4.0, ("total",))
    assert split_train_values(metrics={"box_loss": 1.0}).metrics == {"box_loss": 1.0}  # said to be a metric


SCRIPT = """
import sys, warnings
from unitb.train_step import split_train_values
split = split_train_values(losses=dict(total=2.0, loss=1.0))
print(split.total)
"""


def test_the_rule_does_not_depend_on_the_hash_seed():
    seen = set()
    for seed in ("0", "1", "2", "3"):
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, cwd=ROOT)
        seen.add(done.stdout.strip())
    assert seen == {"1.0"}


def _loss_tags(folder):
    scalars = reader.scalars(str(folder))
    return {tag: [v for _s, v in points] for tag, points in scalars.items() if tag.startswith("train/loss")}


def test_both_totals_reach_the_run_on_every_entry_point(tmp_path):
    import tensorflow as tf
    import torch

    import unitb
    from torch_adapter import TorchLogger

    expected = {"train/loss": [1.0], "train/loss/total": [2.0]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = torch.nn.Linear(2, 1)
        log = TorchLogger(str(tmp_path / "torch"), model, torch.optim.SGD(model.parameters(), 0.1),
                          scalar_interval=1, log_grad_norm=False, log_speed=False)
        log.log_step(1, losses={"total": 2.0, "loss": 1.0})
        log.close()
        assert _loss_tags(tmp_path / "torch") == expected

        tf_log = unitb.TFLogger(str(tmp_path / "tfloop"), start_step=0, scalar_interval=1, log_speed=False)
        tf_log.log_train_step(1, losses={"total": tf.constant(2.0), "loss": tf.constant(1.0)})
        tf_log.close()
        assert _loss_tags(tmp_path / "tfloop") == expected

        graph_log = unitb.TFLogger(str(tmp_path / "tfgraph"), start_step=0, scalar_interval=1, log_speed=False,
                                   log_grad_norm=False)

        @tf.function
        def step_fn(step):
            graph_log.log_train_step(step, losses={"total": tf.constant(2.0), "loss": tf.constant(1.0)})

        step_fn(tf.constant(1, tf.int64))
        graph_log.close()
        assert _loss_tags(tmp_path / "tfgraph") == expected
    totals = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning) and "'total' is" in str(w.message)]
    assert len(totals) == 3  # eager entry points say it once each; the in-graph path (traced) too


def test_a_parameter_an_entry_point_cannot_honour_is_refused_at_construction(tmp_path):
    import torch

    import unitb
    from torch_adapter import TorchLogger

    model = torch.nn.Linear(2, 1)
    builders = {
        "TorchLogger": lambda: TorchLogger(str(tmp_path / "t"), model, None, log_graph=True),
        "TFCallback": lambda: unitb.TFCallback(str(tmp_path / "k"), log_graph=True),
        "TFLogger": lambda: unitb.TFLogger(str(tmp_path / "l"), log_graph=True),
    }
    for owner, build in builders.items():
        with pytest.raises(ValueError, match=rf"{owner} does not support log_graph=True"):
            build()
    unitb.EnhancedTensorBoardHook(log_graph=True)  # the hook writes the graph


def test_help_shows_every_parameter_with_its_default():
    import inspect
    from dataclasses import fields

    import unitb
    from unitb.options import LogOptions

    for entry in (unitb.TFCallback, unitb.TFLogger, unitb.TorchLogger, unitb.EnhancedTensorBoardHook):
        params = inspect.signature(entry).parameters
        assert not [p for p in params.values() if p.kind is inspect.Parameter.VAR_KEYWORD], entry
        for field_ in fields(LogOptions):
            assert params[field_.name].default == field_.default, (entry, field_.name)
            assert params[field_.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["upload_interval"].default == 30.0
    assert "storage_options" not in inspect.signature(unitb.EnhancedTensorBoardHook).parameters  # backend_args
    text = __import__("pydoc").render_doc(unitb.TFCallback)
    assert "grad_norm_interval: 'int' = 100" in text and "scalar_interval: 'Optional[int]' = None" in text
