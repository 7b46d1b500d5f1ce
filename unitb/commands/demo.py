"""``unitb demo``: train three tiny models — mmpose/mmengine (PyTorch), Keras fit, a custom
TF loop — into one log root, then check that they share one TensorBoard layout.

The PyTorch run is a genuine mmpose top-down model when mmpose is installed
(``scripts/install-mmpose.sh``) and the plain-mmengine pose example otherwise; the demo says
which one it used.

Each example runs in its own process (as a user would run it), so one framework's import
never leaks into another's timing or state.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from importlib.util import find_spec
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from unitb.commands.arguments import TORCH_CHOICES
from unitb.read import diff as diff_mod
from unitb.backends import forwarder
from unitb.backends import registry
from unitb.folder import versions
from unitb.notices import default_warn
from unitb.write import hparams


class Example(NamedTuple):
    name: str  # the run folder
    script: str  # relative to examples/
    what: str
    extra_args: Tuple[str, ...] = ()
    takes_activations: bool = True  # the script has --activations (TFLogger has no activation probe)


MMPOSE = Example("mmpose-topdown", os.path.join("mmpose", "train.py"),
                 "PyTorch / mmpose TopdownPoseEstimator (ResNet-18, COCO data) + EnhancedTensorBoardHook",
                 ("--no-checkpoints",))  # a ResNet-18 checkpoint is ~140 MB: not for a demo folder
MMENGINE = Example("mmengine-pose", "mmengine_pose.py", "PyTorch / mmengine Runner + EnhancedTensorBoardHook")
TF_EXAMPLES = (
    Example("keras-fit", "keras_fit.py", "TensorFlow / Keras model.fit + unitb.TFCallback"),
    Example("tf-yolo-loop", "yolo_tf_loop.py", "TensorFlow / custom YOLO loop + unitb.TFLogger + CheckpointManager",
            takes_activations=False),
)
# The tiny models gain nothing from a second thread, and lose much when the cores are shared:
# measured on 2 cores, 36 s with one thread against 44 s with the default (quiet machine), and
# see docs/getting-started.md for a busy one.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
              "TF_NUM_INTEROP_THREADS": "1"}
# Every example trains in whole epochs (mmpose: 4 steps, the others: 8), so the demo trains a
# multiple of 8 steps: all three runs then end at the same step.
WHOLE_EPOCHS = 8


def mmpose_installed() -> bool:
    return find_spec("mmpose") is not None and find_spec("xtcocotools") is not None


def pick_examples(torch_example: str = "auto") -> Tuple[Example, ...]:
    """The three examples to run; ``auto`` takes mmpose when it is installed."""
    if torch_example not in TORCH_CHOICES:
        raise ValueError(f"torch_example must be one of {TORCH_CHOICES}, got {torch_example!r}")
    use_mmpose = torch_example == "mmpose" or (torch_example == "auto" and mmpose_installed())
    return ((MMPOSE if use_mmpose else MMENGINE),) + TF_EXAMPLES


def examples_dir() -> str:
    """The checkout's examples/ (beside the unitb package: unitb/commands/ is two levels down)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(package), "examples")


def runnable(tool: str, module: str) -> str:
    """How to start ``tool`` (a console script of this environment) exactly as printed: its
    name when the shell finds this environment's copy, else its full path, else ``python -m``
    (a venv that was never activated has its scripts off PATH)."""
    here = os.path.join(os.path.dirname(sys.executable), tool)
    found = shutil.which(tool)
    if found and os.path.realpath(found) == os.path.realpath(here):
        return tool
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return shlex.quote(here)
    return f"{shlex.quote(sys.executable)} -m {module}"


def run(out: str = "runs", steps: int = 64, torch_example: str = "auto", backends: Sequence[str] = (),
        tracking_uri: Optional[str] = None, activations: bool = False) -> int:
    """Train the three examples into ``out`` (or its next free folder), check they share one
    layout, and say how to look at them. ``activations``: the examples also draw their layers'
    outputs (``activations/*``), which otherwise stay out of the Time Series tab's first screen."""
    if steps <= 0:
        print("unitb demo: --steps must be positive", file=sys.stderr)
        return 2
    chosen = fresh_folder(out)
    if chosen != os.path.normpath(out):  # a second demo keeps the first's runs, as every entry point does
        print(f"the previous demo's runs stay in {out}/; this one writes to {chosen}/", flush=True)
    out = chosen
    try:
        settings = demo_backends(out, backends, tracking_uri)
    except ValueError as exc:
        print(f"unitb demo: {exc}", file=sys.stderr)
        return 2
    if steps % WHOLE_EPOCHS:
        rounded = -(-steps // WHOLE_EPOCHS) * WHOLE_EPOCHS
        print(f"training {rounded} steps instead of {steps}: every example trains whole epochs of "
              f"{WHOLE_EPOCHS} steps, and the three runs should end at the same step", flush=True)
        steps = rounded
    if torch_example == "mmpose" and not mmpose_installed():
        print("unitb demo: --torch-example mmpose needs mmpose: bash scripts/install-mmpose.sh <venv>",
              file=sys.stderr)
        return 2
    examples = pick_examples(torch_example)
    if torch_example == "auto" and examples[0] is MMENGINE:
        print("mmpose is not installed: the PyTorch run uses the plain-mmengine pose example "
              "(bash scripts/install-mmpose.sh <venv> for the mmpose one)", flush=True)
    folder = examples_dir()
    if not os.path.isdir(folder):
        print(f"unitb demo: the examples folder is missing ({folder}); run it from a source checkout",
              file=sys.stderr)
        return 2
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore::DeprecationWarning")
    for name, value in ONE_THREAD.items():
        env.setdefault(name, value)  # what the user set wins
    run_dirs: List[str] = []
    for index, example in enumerate(examples, start=1):
        name = example.name
        target = os.path.join(out, name)
        print(f"[{index}/{len(examples)}] {name}: {example.what}, {steps} steps ...", flush=True)
        started = time.time()
        command = [sys.executable, os.path.join(folder, example.script), "--out", out, "--steps", str(steps)]
        command += list(example.extra_args) + (["--activations"] if activations and example.takes_activations else [])
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stdout[-3000:] + result.stderr[-3000:], file=sys.stderr)
            print(f"unitb demo: {name} failed (exit {result.returncode})", file=sys.stderr)
            return 1
        print(f"      done in {time.time() - started:.1f} s -> {target}", flush=True)
        run_dirs.append(target)
    layouts = [diff_mod.layout_of(d) for d in run_dirs]
    report = diff_mod.compare(layouts)
    details = os.path.join(out, PARITY_FILE)
    with open(details, "w") as handle:
        handle.write(diff_mod.format_report(layouts, report) + "\n")
    print()
    print(verdict(report, layouts, details))

    experiment = hparams.write_experiment(out)
    if experiment is not None:
        print(f"HPARAMS: {experiment} declares the shared hyperparameters, train/loss and every val/* metric "
              "of the three runs")
    print()
    where = shlex.quote(os.path.abspath(out))  # works from any folder, as printed
    print(f"Look at them: {runnable('tensorboard', 'tensorboard.main')} --logdir {where} --host 127.0.0.1 --port 6006")
    if settings:
        send_to_backends(run_dirs, settings)
    return 0 if report.ok else 1


PARITY_FILE = "parity.txt"
# The folders a demo writes below its --out: a folder holding any of them holds an earlier demo.
DEMO_FOLDERS = tuple(e.name for e in (MMPOSE, MMENGINE) + TF_EXAMPLES) + ("tf-yolo-loop-ckpt",)


def fresh_folder(out: str) -> str:
    """``out``, or the first of ``out-2``, ``out-3``… that holds no earlier demo's runs."""
    out, number = os.path.normpath(out), 1
    while True:
        folder = versions.version_path(out, number)
        if not any(os.path.exists(os.path.join(folder, name)) for name in DEMO_FOLDERS):
            return folder
        number += 1


def verdict(report: "diff_mod.DiffReport", layouts: Sequence["diff_mod.RunLayout"], details: str) -> str:
    """The demo's answer first: the verdict, then only what a user must act on (mismatches); the
    family table and the notes on framework-specific names are in ``details``."""
    families = len(set().union(*(set(layout.families) for layout in layouts)))
    if report.ok:
        return (f"parity: OK — the {len(layouts)} runs share one layout ({families} tag families, one step axis); "
                f"the table and {len(report.notes)} notes on framework-specific names: {details}")
    lines = [f"MISMATCH: {mismatch}" for mismatch in report.mismatches]
    lines.append(f"parity: FAILED ({len(report.mismatches)} mismatch(es)); the whole report: {details}")
    return "\n".join(lines)


def demo_backends(out: str, names: Sequence[str], tracking_uri: Optional[str]) -> Dict[str, Dict[str, object]]:
    """The demo's backend settings: each backend kept on this machine under ``out`` where it can
    (W&B offline, MLflow in a SQLite file; :meth:`~unitb.backends.base.Backend.local_options`),
    MLflow on the server of ``tracking_uri`` if one is given. Checked before anything is trained."""
    if not names:
        return {}
    registry.check_backends(names)  # a package missing: one message for all, before anything else
    given: Dict[str, Dict[str, object]] = {"mlflow": {"tracking_uri": tracking_uri}} if tracking_uri else {}
    known = registry.backends()
    options = {name: known[name].local_options(out, "unitb-demo", given.get(name, {}))
               for name in names if name in known}
    os.makedirs(out, exist_ok=True)
    return options


def send_to_backends(run_dirs: Sequence[str], settings: Dict[str, Dict[str, object]]) -> None:
    """Send the finished runs, as ``unitb push --to`` does (the same forwarder a live run uses)."""
    print()
    for run_dir in run_dirs:
        sent = forwarder.push(run_dir, settings, default_warn)
        print(f"sent {run_dir}: " + ", ".join(f"{name} up to step {step}" for name, step in sorted(sent.items())))
    known = registry.backends()
    for name, options in settings.items():
        line = known[name].where_to_look(options, runnable)
        if line:
            print(line)
