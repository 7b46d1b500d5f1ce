"""A backend from outside the package plugs in with one class and one registration: registered in
the training process, or named by an installed package's entry point for the ``unitb`` command.
It gets what TensorBoard gets, step for step, and goes on in the same run after a resume."""
import json
import os
import subprocess
import sys
import textwrap
from typing import List

import pytest
import torch

import unitb
from unitb.backends import Backend, register_backend
from unitb.backends import registry
from unitb import reader

RECEIVED: List[tuple] = []  # (run id, step, tag, value) as the backend below took them
OPENED: List[tuple] = []  # (state, start_step) each time it opened


@register_backend
class Tally(Backend):
    """Keeps every scalar it is sent; its run id survives in the run folder."""
    name = "tally"
    keywords = ("label",)
    in_order = True

    def open(self, state, start_step, run_name):
        OPENED.append((dict(state), start_step))
        self.run_id = state.get("id") or f"{self.options.get('label', 'run')}-{len(OPENED)}"
        return int(state.get("sent_step", -1))

    def send(self, steps):
        for step, points in steps:
            RECEIVED.extend((self.run_id, step, tag, value) for tag, kind, value in points if kind == "scalar")

    def state(self):
        return {"id": self.run_id}


def _train(logdir, first, last, start_step=0):
    torch.manual_seed(first)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logger = unitb.TorchLogger(logdir, model=model, optimizer=optimizer, start_step=start_step, scalar_interval=1,
                               log_speed=False, backends={"tally": {"label": "pose"}})
    for step in range(first, last + 1):
        loss = model(torch.randn(8, 3)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logger.log_step(step, loss=loss)
    logger.close()
    return logger.run_dir


def test_a_registered_backend_gets_the_run_step_for_step_and_resumes_in_the_same_run(tmp_path):
    RECEIVED.clear()
    OPENED.clear()
    run_dir = _train(str(tmp_path / "run"), 1, 6)
    _train(str(tmp_path / "run"), 7, 9, start_step=6)
    tensorboard = {tag: [(int(step), float(value)) for step, value in points]
                   for tag, points in reader.scalars(run_dir).items()}
    assert "train/loss" in tensorboard and len(tensorboard["train/loss"]) == 9
    taken = {}
    for _, step, tag, value in RECEIVED:
        taken.setdefault(tag, []).append((step, value))
    assert taken == tensorboard  # every tag, every step once, in order, the same values
    assert [opened[1] for opened in OPENED] == [0, 6] and OPENED[1][0]["id"] == "pose-1"
    assert {run for run, *_ in RECEIVED} == {"pose-1"}  # the resume went on in the same run


def test_registration_refuses_what_would_be_ambiguous():
    with pytest.raises(ValueError, match="registered already"):
        register_backend(type("Other", (Backend,), {"name": "wandb"}))
    with pytest.raises(ValueError, match="must be lowercase"):
        register_backend(type("Loud", (Backend,), {"name": "Loud Backend"}))
    with pytest.raises(TypeError, match="subclass of unitb.backends.Backend"):
        register_backend(object)
    with pytest.raises(ValueError, match="unknown backend 'nope'; choose from tensorboard, wandb, mlflow, tally"):
        registry.check_backends(("nope",))
    with pytest.raises(ValueError, match="unknown option"):
        registry.check_backends({"tally": {"lable": "x"}})


PLUGIN = textwrap.dedent('''
    import json
    from unitb.backends import Backend

    class JsonLines(Backend):
        """Each scalar as a JSON line in the file its ``path`` option names."""
        name = "jsonl"
        keywords = ("path",)

        def open(self, state, start_step, run_name):
            self.handle = open(self.options["path"], "a")
            return -1

        def send(self, steps):
            for step, points in steps:
                for tag, kind, value in points:
                    if kind == "scalar":
                        self.handle.write(json.dumps([step, tag, value]) + "\\n")

        def close(self):
            self.handle.close()

    class NeedsAPackage(JsonLines):
        name = "needy"
        package = "a_package_nobody_installed"
''')


def test_an_installed_package_names_its_backend_and_unitb_push_finds_it(tmp_path):
    """No import in the user's code: the entry point of an installed package is enough."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "jsonl_backend.py").write_text(PLUGIN)
    info = site / "jsonl_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jsonl-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[unitb.backends]\njsonl = jsonl_backend:JsonLines\n"
                                           "needy = jsonl_backend:NeedsAPackage\n")
    run_dir = _train(str(tmp_path / "runs" / "a"), 1, 5)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "points.jsonl"

    def unitb_push(*words):
        return subprocess.run([sys.executable, "-m", "unitb", "push", str(tmp_path / "runs"), *words],
                              env=env, capture_output=True, text=True, timeout=300)

    done = unitb_push("--to", "jsonl", "--option", f"jsonl.path={out}")
    assert done.returncode == 0, done.stderr
    assert "jsonl up to step 5" in done.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    tensorboard = sorted((int(step), tag, float(value)) for tag, points in reader.scalars(run_dir).items()
                         for step, value in points)
    assert sorted((step, tag, value) for step, tag, value in lines) == tensorboard
    needy = unitb_push("--to", "needy")
    assert needy.returncode == 2
    assert needy.stderr.strip().endswith("(a_package_nobody_installed): pip install a_package_nobody_installed")
    no_value = unitb_push("--to", "jsonl", "--option", "jsonl.path")  # NAME.KEY without =VALUE
    assert no_value.returncode == 2 and "--option takes NAME.KEY=VALUE" in no_value.stderr
    unknown = unitb_push("--to", "nope")
    assert unknown.returncode == 2
    assert "choose from tensorboard, wandb, mlflow, jsonl, needy" in unknown.stderr
