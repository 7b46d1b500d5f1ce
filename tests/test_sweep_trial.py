"""A sweep's trial as the training script sees it (unitb/life/sweep_trial.py): handed over in the
environment, it reaches every entry point with nothing added to the script — its parameters,
sweep and trial number in the run's hparams (read back from the event file), the run in the
trial's folder — and ``unitb.sweep_params()`` returns the parameters (None outside a sweep)."""
import json
import os
import sys

import numpy as np
import pytest

import unitb
from unitb import reader
from unitb.life import sweep_trial

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))


def _trial(monkeypatch, folder, number=3):
    info = sweep_trial.TrialInfo(sweep="lr-sweep", number=number, params={"lr": 0.02, "optimizer.type": "SGD"},
                                 logdir=str(folder) if folder is not None else None)
    for key, value in info.environment().items():
        monkeypatch.setenv(key, value)
    return info


def test_outside_a_sweep_there_are_no_params(monkeypatch):
    monkeypatch.delenv(sweep_trial.ENV, raising=False)
    assert unitb.sweep_params() is None


def test_a_malformed_handover_is_said_once_and_ignored(monkeypatch):
    monkeypatch.setenv(sweep_trial.ENV, json.dumps({"sweep": "s"}))  # no trial number
    with pytest.warns(unitb.UnitbWarning, match="UNITB_SWEEP_TRIAL is not a trial unitb's agent wrote"):
        assert unitb.sweep_params() is None


def test_torch_logger_writes_into_the_trials_folder_with_its_params(tmp_path, monkeypatch):
    import torch

    _trial(monkeypatch, tmp_path / "sweeps" / "lr-sweep" / "trial-003")
    assert unitb.sweep_params() == {"lr": 0.02, "optimizer.type": "SGD"}
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=unitb.sweep_params()["lr"])
    log = unitb.TorchLogger(str(tmp_path / "the-scripts-own"), model=model, optimizer=opt, scalar_interval=1,
                            hparams={"lr": 0.5, "mine": 1})  # the trial's values win over the script's
    for step in range(1, 4):
        loss = model(torch.ones(2, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.log_step(step, loss=loss)
    log.close()
    assert log.run_dir == str(tmp_path / "sweeps" / "lr-sweep" / "trial-003")
    assert not (tmp_path / "the-scripts-own").exists()
    values = reader.hparams(log.run_dir)
    assert (values["lr"], values["optimizer.type"], values["sweep"], values["trial"], values["mine"]) == (
        0.02, "SGD", "lr-sweep", 3, 1)
    assert [s for s, _ in reader.scalars(log.run_dir)["train/loss"]] == [1, 2, 3]


def test_keras_fit_and_a_tf_loop_take_the_trial(tmp_path, monkeypatch):
    import keras

    _trial(monkeypatch, tmp_path / "fit", number=1)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = unitb.TFCallback(str(tmp_path / "ignored"), grad_norm_interval=1)
    model.fit(x, x[:, :1], batch_size=8, epochs=1, callbacks=[callback], verbose=0)
    callback.close()
    assert callback.run_dir == str(tmp_path / "fit")
    assert {k: reader.hparams(callback.run_dir)[k] for k in ("lr", "sweep", "trial")} == {
        "lr": 0.02, "sweep": "lr-sweep", "trial": 1}

    _trial(monkeypatch, tmp_path / "loop", number=2)
    logger = unitb.TFLogger(str(tmp_path / "ignored-too"), start_step=0)
    logger.log_train_step(1, losses={"loss": 1.0})
    logger.close()
    assert logger.run_dir == str(tmp_path / "loop")
    assert {k: reader.hparams(logger.run_dir)[k] for k in ("lr", "sweep", "trial")} == {
        "lr": 0.02, "sweep": "lr-sweep", "trial": 2}


def test_the_mmengine_hook_puts_the_trial_in_its_hparams(tmp_path, monkeypatch):
    import mmengine_pose

    _trial(monkeypatch, None, number=4)  # the hook writes where mmengine's work_dir says
    mmengine_pose.build_runner(str(tmp_path / "work"), steps=4, hook=dict(grad_norm_interval=2)).train()
    values = reader.hparams(mmengine_pose.vis_dir(str(tmp_path / "work")))
    assert (values["lr"], values["optimizer.type"], values["sweep"], values["trial"]) == (0.02, "SGD", "lr-sweep", 4)
    assert values["framework"] == "pytorch-mmengine"
