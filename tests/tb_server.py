"""Start the real TensorBoard server on a free loopback port, query its HTTP API, stop it."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TensorBoard:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params) -> object:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with urllib.request.urlopen(self.base + path + query, timeout=30) as response:
            return json.loads(response.read().decode())

    def post(self, path: str, body: dict) -> object:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read().decode())

    def scalar_steps(self, run: str, tag: str) -> list:
        return [int(point[1]) for point in self.get("/data/plugin/scalars/scalars", run=run, tag=tag)]


@contextlib.contextmanager
def tensorboard(logdir: str, load_fast: bool = True, expect_runs: int = 1) -> Iterator[TensorBoard]:
    """A running server that has loaded at least ``expect_runs`` runs with scalars."""
    port = free_port()
    binary = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    command = [binary if os.path.exists(binary) else "tensorboard", "--logdir", logdir, "--host", "127.0.0.1",
               "--port", str(port), "--reload_interval", "1", f"--load_fast={'true' if load_fast else 'false'}"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    server = TensorBoard(port)
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                tags = server.get("/data/plugin/scalars/tags")
                if len(tags) >= expect_runs and all(tags.values()):
                    time.sleep(2)  # let the loader finish its first pass over every file
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise TimeoutError("tensorboard did not load the runs in 90 s")
            time.sleep(0.5)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its data-server child, by our own pid
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
