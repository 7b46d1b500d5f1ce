"""Alerts: each rule fires once per episode, reaches the console, the run and a real webhook
and command; what cannot be delivered is kept and sent once, later."""
from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
import time
import warnings
from typing import List

import numpy as np
import pytest
import torch

import unitb
from unitb import reader
from unitb.commands import cli
from unitb.life import alert_delivery


class Webhook:
    """A real HTTP server on loopback that counts the alerts POSTed to it; ``start`` it late to
    play an endpoint that was down."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: List[dict] = []
        self.server = None

    def start(self) -> "Webhook":
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _logger(logdir, **alerts):
    model = torch.nn.Linear(4, 1)
    return unitb.TorchLogger(logdir, model=model, scalar_interval=1, system_interval=0, alerts=alerts or True)


def _texts(run_dir, tag):
    return [(row.step, row.value) for row in reader.iter_rows(run_dir) if row.tag == tag]


def test_a_webhook_that_was_down_gets_the_alert_exactly_once_later(tmp_path):
    hook = Webhook()  # not listening yet: the compute node's network is down
    logger = _logger(str(tmp_path / "run"), webhook=hook.url, timeout=2)
    logger.log_step(1, loss=torch.tensor(1.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger.log_step(2, loss=torch.tensor(float("nan")))
        logger.log_step(3, loss=torch.tensor(float("nan")))  # the same episode: no second alert
        logger.close()
    said = [str(w.message) for w in caught]
    assert sum("alert: [ERROR] train/loss is nan" in line for line in said) == 1, said
    assert sum("did not reach its webhook" in line for line in said) == 1, said
    assert _texts(logger.run_dir, "alerts/nonfinite")[0][0] == 2  # the run holds it, at its step
    assert len(alert_delivery.pending(logger.run_dir)) == 1
    hook.start()
    try:
        assert cli.main(["alerts", "send", logger.run_dir]) == 0
        assert cli.main(["alerts", "send", logger.run_dir]) == 0  # nothing left: nothing sent twice
        assert len(hook.received) == 1
        assert hook.received[0]["unitb"]["rule"] == "nonfinite" and "train/loss is nan" in hook.received[0]["text"]
    finally:
        hook.stop()


def test_the_next_alert_sends_what_an_earlier_one_could_not(tmp_path):
    hook = Webhook()
    logger = _logger(str(tmp_path / "run"), webhook=hook.url, timeout=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.log_step(1, loss=torch.tensor(float("inf")))
        logger.life._monitor._dispatcher.wait(5)
        hook.start()
        try:
            unitb.alert("checkpoint saved", "epoch 3 is on disk", "info")
            logger.close()
        finally:
            hook.stop()
    assert sorted(item["unitb"]["rule"] for item in hook.received) == ["nonfinite", "user"]
    assert alert_delivery.pending(logger.run_dir) == []
    assert [text for _, text in _texts(logger.run_dir, "alerts/user")] and \
        "checkpoint saved" in _texts(logger.run_dir, "alerts/user")[0][1]


def test_a_command_gets_the_alert_in_its_environment_and_one_that_hangs_is_kept(tmp_path):
    out = tmp_path / "paged.txt"
    script = tmp_path / "page.py"
    script.write_text("import os\nopen(os.environ['OUT'], 'a').write(os.environ['UNITB_ALERT_RULE'] + ' ' + "
                      "os.environ['UNITB_ALERT_LEVEL'] + ' ' + os.environ['UNITB_ALERT_STEP'] + '\\n')\n")
    os.environ["OUT"] = str(out)
    try:
        logger = _logger(str(tmp_path / "run"), command=f"{sys.executable} {script}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logger.log_step(1, loss=torch.tensor(float("nan")))
            logger.close()
    finally:
        del os.environ["OUT"]
    assert out.read_text() == "nonfinite error 1\n"
    hung = _logger(str(tmp_path / "hung"), command=f"{sys.executable} -c 'import time; time.sleep(30)'", timeout=0.5)
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hung.log_step(1, loss=torch.tensor(float("nan")))
        hung.close()
    assert time.monotonic() - started < 10  # the close waits at most the timeout, training never
    assert any("did not reach its command (TimeoutExpired" in str(w.message) for w in caught)
    assert len(alert_delivery.pending(hung.run_dir)) == 1


def test_a_loop_that_hangs_is_noticed_by_the_alert_thread(tmp_path):
    logger = _logger(str(tmp_path / "run"), stall_minutes=0.01)  # 0.6 s
    logger.log_step(1, loss=torch.tensor(1.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        time.sleep(2.0)  # the training thread is stuck here
        logger.log_step(2, loss=torch.tensor(1.0))
        time.sleep(2.0)  # stuck again: a new episode
        logger.close()
    stalls = [str(w.message) for w in caught if "no training step for" in str(w.message)]
    assert len(stalls) == 2, stalls
    assert [step for step, _ in _texts(logger.run_dir, "alerts/stalled")] == [1, 2]


def test_a_loss_that_diverges_fires_once_until_it_comes_back(tmp_path):
    logger = _logger(str(tmp_path / "run"), diverge_after=2, diverge_factor=10)
    losses = [5.0, 4.0, 1.0, 0.5, 20.0, 30.0, 1.0, 50.0]  # lowest after warm-up 0.5: 20 and 30 one episode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step, loss in enumerate(losses, start=1):
            logger.log_step(step, loss=torch.tensor(loss))
        logger.close()
    assert [step for step, _ in _texts(logger.run_dir, "alerts/diverged")] == [5, 8]


def test_a_nan_loss_in_a_real_fit_is_one_alert(tmp_path):
    import keras

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x[:, :1].copy()
    y[8:] = np.nan  # from the third batch on, the loss is NaN
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    callback = unitb.TFCallback(str(tmp_path / "run"), scalar_interval=1, system_interval=0, alerts=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
        callback.close()
    assert sum("alert: [ERROR] train/loss is nan" in str(w.message) for w in caught) == 1
    assert [step for step, _ in _texts(callback.run_dir, "alerts/nonfinite")] == [3]


def test_a_nan_loss_in_a_real_mmengine_run_is_one_alert(tmp_path):
    import mmengine_pose
    from mmengine.hooks import Hook

    class Poison(Hook):  # from the fourth iteration on the weights are NaN, as after an overflow
        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == 3:
                with torch.no_grad():
                    next(runner.model.parameters()).fill_(float("nan"))

    runner = mmengine_pose.build_runner(str(tmp_path / "work"), steps=8, tb_dir=str(tmp_path / "tb"),
                                        checkpoints=False, hook=dict(scalar_interval=1, system_interval=0,
                                                                     alerts=True))
    runner.register_hook(Poison())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.train()
    assert [step for step, _ in _texts(str(tmp_path / "tb"), "alerts/nonfinite")] == [4]


def test_bad_alert_settings_fail_at_construction(tmp_path):
    for bad, match in ((dict(webhok="http://x"), "did you mean 'webhook'"), (dict(webhook="ftp://x"), "http"),
                       (dict(stall_minutes=-1), "stall_minutes"), ("yes", "alerts must be")):
        with pytest.raises(ValueError, match=match):
            unitb.TorchLogger(str(tmp_path / "bad"), alerts=bad)
    with pytest.raises(ValueError, match="level"):
        unitb.alert("x", level="fatal")


def test_a_gpu_close_to_full_memory_is_one_alert_an_episode(tmp_path):
    """The sampler's figures as NVML gives them on a GPU (none here): 96 % is an alert, 92 % the
    same episode, 80 % its end, 97 % a new one."""
    logger = _logger(str(tmp_path / "run"), gpu_memory_percent=95)
    logger.log_step(1, loss=torch.tensor(1.0))
    monitor = logger.life._monitor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step, used in enumerate([96.0, 96.5, 92.0, 80.0, 97.0], start=2):
            monitor.on_system({"system/gpu/0/memory_used_mb": used * 100, "system/gpu/0/memory_total_mb": 10000.0},
                              step)
        logger.close()
    assert [(a.rule, a.step) for a in monitor.raised] == [("gpu_memory", 2), ("gpu_memory", 6)]
