"""The ``unitb`` CLI on real event files (console script run as a user would)."""
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from unitb.commands import cli
from unitb.read import row_text


def _write_run(path, with_grad=True, duplicate_step=False, val_at_epoch=False):
    from torch.utils.tensorboard import SummaryWriter

    from unitb import schema
    from unitb.write import protos

    writer = SummaryWriter(str(path))
    for step in range(1, 11):
        writer.add_scalar("train/loss", 1.0 / step, step)
        writer.add_scalar("train/learning_rate/0", 0.1, step)
        writer.add_scalar("train/epoch", step / 5, step)
        if with_grad:
            writer.add_scalar("train/gradient_norm/global", 2.0, step)
    if duplicate_step:
        writer.add_scalar("train/loss", 9.0, 5)
    writer.add_scalar("val/PCK", 0.5, 2 if val_at_epoch else 10)
    for tag in (schema.MODEL_TOTAL_PARAMETERS, schema.MODEL_TRAINABLE_PARAMETERS, schema.MODEL_SIZE_MB):
        writer.add_scalar(tag, 1.0, 0)
    writer.add_histogram("weights/a", np.arange(10.0), 10)
    writer._get_file_writer().add_summary(protos.custom_scalars_summary(schema.custom_scalars_layout()), 0)
    writer.close()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "unitb", *args], capture_output=True, text=True)


def test_tags_lists_kind_count_and_steps(tmp_path):
    _write_run(tmp_path)
    out = _cli("tags", str(tmp_path))
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("train/loss "))
    assert line.split() == ["train/loss", "scalar", "10", "1", "10"]
    assert any(l.split()[:2] == ["weights/a", "histogram"] for l in out.stdout.splitlines())


def test_export_csv_and_json(tmp_path):
    _write_run(tmp_path)
    out = _cli("export", str(tmp_path), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    loss = [(int(r["step"]), float(r["value"])) for r in rows if r["tag"] == "train/loss"]
    assert loss[0] == (1, 1.0) and loss[-1] == (10, pytest.approx(0.1))
    target = tmp_path / "out.json"
    assert cli.main(["export", str(tmp_path), "--format", "json", "-o", str(target)]) == 0
    data = json.loads(target.read_text())
    assert {"tag": "val/PCK", "step": 10, "kind": "scalar", "value": 0.5}.items() <= \
        next(d for d in data if d["tag"] == "val/PCK").items()


def test_diff_passes_on_parity_and_fails_with_plain_words(tmp_path):
    _write_run(tmp_path / "a")
    _write_run(tmp_path / "b")
    _write_run(tmp_path / "c", with_grad=False, duplicate_step=True, val_at_epoch=False)
    ok = _cli("diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert ok.returncode == 0 and "parity: OK" in ok.stdout
    bad = _cli("diff", str(tmp_path / "a"), str(tmp_path / "c"))
    assert bad.returncode == 1
    assert "train/gradient_norm/global" in bad.stdout and "has none" in bad.stdout
    assert "train/loss has step(s) 5 more than once" in bad.stdout


def test_diff_flags_validation_off_the_step_axis(tmp_path):
    _write_run(tmp_path / "a")
    from torch.utils.tensorboard import SummaryWriter

    _write_run(tmp_path / "b")
    writer = SummaryWriter(str(tmp_path / "b"))
    writer.add_scalar("val/loss", 1.0, 0)
    writer.close()
    out = _cli("diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert out.returncode == 1 and "val/loss is logged at step 0" in out.stdout


def test_missing_run_is_a_clear_error(tmp_path):
    out = _cli("tags", str(tmp_path / "nope"))
    assert out.returncode == 2 and "not a directory" in out.stderr
    os.makedirs(tmp_path / "empty" / "inner")
    _write_run(tmp_path / "empty" / "inner")
    out = _cli("tags", str(tmp_path / "empty"))  # a folder of runs: a row per run and tag
    assert out.returncode == 0 and ["inner", "train/loss", "scalar", "10", "1", "10"] in \
        [line.split() for line in out.stdout.splitlines()]
    os.makedirs(tmp_path / "hollow")
    out = _cli("tags", str(tmp_path / "hollow"))
    assert out.returncode == 2 and "no event files" in out.stderr


def test_version_and_each_command_s_own_help_page():
    from importlib import metadata

    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"unitb {metadata.version('unitb')}"
    page = _cli("demo", "--help").stdout
    assert "Train tiny PyTorch and TensorFlow models into comparable runs." in page and "(default: 64)" in page
    assert "Create a sweep and run K agents on this machine." in _cli("sweep", "run", "--help").stdout


def test_demo_picks_mmpose_only_when_installed(monkeypatch):
    from unitb.commands import demo

    monkeypatch.setattr(demo, "mmpose_installed", lambda: True)
    assert [e.name for e in demo.pick_examples()] == ["mmpose-topdown", "keras-fit", "tf-yolo-loop"]
    assert demo.pick_examples("mmengine")[0].name == "mmengine-pose"
    monkeypatch.setattr(demo, "mmpose_installed", lambda: False)
    assert demo.pick_examples()[0].name == "mmengine-pose"
    assert demo.run(out="unused", torch_example="mmpose") == 2  # asked for mmpose, not installed: clear error
    with pytest.raises(ValueError, match="torch_example"):
        demo.pick_examples("detectron")


@pytest.mark.parametrize("compiled", [True, False], ids=["arrow", "python"])
def test_export_writes_what_csv_and_json_write_for_each_row(tmp_path, monkeypatch, compiled):
    """Scalar stretches are formatted in one pass (by Arrow, or by Python without pyarrow): the
    text must be csv.writer's and json.dumps' for every row, tags that need quoting and NaN/inf
    values included."""
    from torch.utils.tensorboard import SummaryWriter

    monkeypatch.setattr(row_text, "_arrow_available", lambda: compiled)

    from unitb import reader

    writer = SummaryWriter(str(tmp_path))
    tags = ["a,b", 'q"x', "line\nbreak", " lead", "plain", "ünï"]
    values = [0.1, float("nan"), float("inf"), -2.5e-30, 1e300]
    for step in range(12):
        for index, tag in enumerate(tags):
            writer.add_scalar(tag, values[(step + index) % len(values)], step, walltime=1.7e9 + step / 3)
    writer.add_histogram("weights/a", np.arange(10.0), 3)
    writer.close()
    rows = reader.read_run(str(tmp_path))
    expected = io.StringIO()
    plain = csv.writer(expected)
    plain.writerow(["tag", "step", "wall_time", "kind", "value"])
    for row in rows:
        value = row.value if row.kind == "scalar" else json.dumps(row_text.row_value(row))
        plain.writerow([row.tag, row.step, "%.6f" % row.wall_time, row.kind, value])
    out = tmp_path / "out.csv"
    assert cli.main(["export", str(tmp_path), "-o", str(out)]) == 0
    assert out.read_bytes() == expected.getvalue().encode()
    objects = [json.dumps({"tag": r.tag, "step": r.step, "wall_time": r.wall_time, "kind": r.kind,
                           "value": row_text.row_value(r)}) for r in rows]
    out = tmp_path / "out.json"
    assert cli.main(["export", str(tmp_path), "--format", "json", "-o", str(out)]) == 0
    assert out.read_text() == "[\n" + ",\n".join(objects) + "\n]\n"


def test_export_into_a_pipe_that_closes_early_is_quiet(tmp_path):
    _write_run(tmp_path)
    script = (f"{sys.executable} -m unitb export {tmp_path} --format json | head -c 10")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True)
    assert done.stdout == '[\n{"tag": ' and "Traceback" not in done.stderr


def test_printed_tensorboard_command_runs_as_printed_without_an_activated_venv():
    """The demo and ``unitb pull`` print how to start TensorBoard: the command must run from a
    shell whose PATH does not hold this environment's scripts (a venv never activated)."""
    import subprocess
    import sys

    from unitb.commands.demo import runnable

    command = runnable("tensorboard", "tensorboard.main")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(f"{command} --version_tb", shell=True, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (command, done.stderr[-2000:])
    assert done.stdout.strip()
    assert command.startswith(os.path.dirname(sys.executable)) or " -m tensorboard.main" in command


def test_a_fresh_venv_prints_a_tensorboard_command_that_runs(tmp_path):
    """From a new venv with only unitb's own requirements, never activated: the command unitb
    prints to start TensorBoard runs as printed."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-warn-conflicts", "-c",
                              os.path.join(root, "constraints.txt"), "-e", root], capture_output=True, text=True,
                             timeout=900)
    if install.returncode != 0 and "Could not find a version" in install.stderr + install.stdout:
        pytest.skip("no package registry reachable for a fresh venv")
    assert install.returncode == 0, install.stderr[-3000:]
    printed = subprocess.run([python, "-c", "from unitb.commands.demo import runnable; "
                              "print(runnable('tensorboard', 'tensorboard.main'))"],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PATH": "/usr/bin:/bin"})
    command = printed.stdout.strip()
    assert command.startswith(str(venv)), command
    done = subprocess.run(f"{command} --version_tb", shell=True, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
