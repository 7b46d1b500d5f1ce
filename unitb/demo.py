"""``unitb demo``: train three tiny models — mmengine (PyTorch), Keras fit, a custom TF
loop — into one log root, then check that they share one TensorBoard layout.

Each example runs in its own process (as a user would run it), so one framework's import
never leaks into another's timing or state.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import List

from unitb import diff as diff_mod

EXAMPLES = (
    ("mmengine-pose", "mmengine_pose.py", "PyTorch / mmengine Runner + EnhancedTensorBoardHook"),
    ("keras-fit", "keras_fit.py", "TensorFlow / Keras model.fit + unitb.TFCallback"),
    ("tf-yolo-loop", "yolo_tf_loop.py", "TensorFlow / custom YOLO loop + unitb.TFLogger + CheckpointManager"),
)


def examples_dir() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "examples")


def run(out: str = "runs", steps: int = 60) -> int:
    if steps <= 0:
        print("unitb demo: --steps must be positive", file=sys.stderr)
        return 2
    folder = examples_dir()
    if not os.path.isdir(folder):
        print(f"unitb demo: the examples folder is missing ({folder}); run it from a source checkout",
              file=sys.stderr)
        return 2
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore::DeprecationWarning")
    owned = [os.path.join(out, name) for name, _, _ in EXAMPLES] + [os.path.join(out, "tf-yolo-loop-ckpt")]
    stale = [path for path in owned if os.path.exists(path)]
    if stale:  # the demo owns these folders: a second demo replaces them instead of stacking runs
        print(f"replacing the previous demo runs in {out}/", flush=True)
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
    run_dirs: List[str] = []
    for index, (name, script, what) in enumerate(EXAMPLES, start=1):
        target = os.path.join(out, name)
        print(f"[{index}/{len(EXAMPLES)}] {name}: {what}, {steps} steps ...", flush=True)
        started = time.time()
        result = subprocess.run([sys.executable, os.path.join(folder, script), "--out", out, "--steps", str(steps)],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stdout[-3000:] + result.stderr[-3000:], file=sys.stderr)
            print(f"unitb demo: {name} failed (exit {result.returncode})", file=sys.stderr)
            return 1
        print(f"      done in {time.time() - started:.1f} s -> {target}", flush=True)
        run_dirs.append(target)
    layouts = [diff_mod.layout_of(d) for d in run_dirs]
    report = diff_mod.compare(layouts)
    print()
    print(diff_mod.format_report(layouts, report))
    print()
    print(f"Look at them: tensorboard --logdir {out} --host 127.0.0.1 --port 6006")
    return 0 if report.ok else 1
