"""One rule, in the core, for which of a step's values is train/loss: the same on all four entry
points and in every process (it used to depend on the hash seed in TFLogger)."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings


from unitb import UnitbWarning
from unitb import reader
from unitb.life.train_step import split_train_values

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
from unitb.life.train_step import split_train_values
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


def test_log_graph_writes_the_graph_on_every_entry_point(tmp_path):
    """log_graph=True does what it says on the three entry points beside the hook (whose test is
    in test_torch_hook.py): a graph event in the run, read back."""
    import numpy as np
    import tensorflow as tf
    import torch

    import keras
    import unitb
    from torch_adapter import TorchLogger
    from unitb import reader

    def graphs(folder):
        return [r for r in reader.read_run(str(folder)) if r.kind == "graph"]

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    log = TorchLogger(str(tmp_path / "torch"), model, optimizer, log_graph=True, log_speed=False)
    for step in range(1, 3):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log.log_step(step, loss=loss)
    log.close()
    assert len(graphs(tmp_path / "torch")) == 1

    keras.utils.set_random_seed(0)
    kmodel = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    kmodel.compile(optimizer="sgd", loss="mse")
    cb = unitb.TFCallback(str(tmp_path / "keras"), log_graph=True, log_speed=False)
    kmodel.fit(np.zeros((32, 4), "float32"), np.zeros((32, 2), "float32"), batch_size=8, epochs=2, callbacks=[cb],
               verbose=0)
    cb.close()
    assert len(graphs(tmp_path / "keras")) == 1

    tf_log = unitb.TFLogger(str(tmp_path / "tf"), start_step=0, model=kmodel, log_graph=True, log_speed=False)
    tf_log.log_train_step(1, losses={"loss": tf.constant(1.0)})
    tf_log.close()
    assert len(graphs(tmp_path / "tf")) == 1


def test_a_model_that_cannot_be_traced_is_one_warning(tmp_path):
    import tensorflow as tf

    import keras
    import unitb

    class Unbuilt(keras.Model):
        def call(self, x):
            return x

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = unitb.TFLogger(str(tmp_path / "tf"), start_step=0, model=Unbuilt(), log_graph=True, log_speed=False)
        log.log_train_step(1, losses={"loss": tf.constant(1.0)})
        log.log_train_step(2, losses={"loss": tf.constant(1.0)})
        log.close()
    said = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning) and "log_graph" in str(w.message)]
    assert len(said) == 1 and "graph skipped" in said[0]
