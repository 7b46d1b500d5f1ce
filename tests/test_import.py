import subprocess
import sys


def test_import_unitb_loads_no_framework():
    code = ("import importlib, pkgutil, sys, unitb\n"
            "for m in pkgutil.walk_packages(unitb.__path__, 'unitb.'): m.name.endswith('__main__') or importlib.import_module(m.name)\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'wandb', 'mlflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # nor a backend: W&B and MLflow load when a run uses them


def test_reading_a_run_loads_no_framework(tmp_path):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from unitb.write import protos
    writer = EventFileWriter(str(tmp_path))
    writer.close()
    code = (f"import sys, unitb.read.run_reader as r; r.read_run({str(tmp_path)!r}); "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert protos  # the proto helpers import no framework either (checked in the subprocess below)
    code = ("import sys; from unitb import schema; from unitb.write import protos; protos.custom_scalars_summary(schema.custom_scalars_layout());"
            "protos.hparams_summaries({'a': 1}); protos.text_summary('config', 'x');"
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_adapters_are_reachable_lazily_from_unitb():
    import unitb
    import tf_adapter
    import torch_adapter

    assert unitb.TFCallback is tf_adapter.TFCallback
    assert unitb.TFLogger is tf_adapter.TFLogger
    assert unitb.CheckpointManager is tf_adapter.CheckpointManager
    assert unitb.EnhancedTensorBoardHook is torch_adapter.EnhancedTensorBoardHook
    assert unitb.TorchLogger is torch_adapter.TorchLogger


NO_TF_TORCH = """
import sys, torch
from torch_adapter import TorchLogger
model = torch.nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), 0.1)
log = TorchLogger(sys.argv[1], model, opt, scalar_interval=1, grad_norm_interval=1)
for step in range(1, 6):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    log.log_step(step, loss=loss)
log.close()
print("tensorflow" in sys.modules)
"""

NO_TF_MMENGINE = """
import sys
sys.path.insert(0, sys.argv[2])
import mmengine_pose
mmengine_pose.build_runner(sys.argv[1], steps=4, checkpoints=False).train()
print("tensorflow" in sys.modules)
"""

TF_AFTER_TORCH = """
import sys
import torch_adapter  # first: the writers' io is tensorboard's own
import numpy as np, tensorflow as tf, keras, unitb
writer = tf.summary.create_file_writer(sys.argv[1] + "/plain")
with writer.as_default():
    tf.summary.scalar("x", 1.0, step=1)
writer.flush()
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
model.compile(optimizer="sgd", loss="mse")
cb = unitb.TFCallback(sys.argv[1] + "/keras", scalar_interval=1, log_speed=False)
model.fit(np.zeros((16, 4), "float32"), np.zeros((16, 2), "float32"), batch_size=8, callbacks=[cb], verbose=0)
cb.close()
print("ok")
"""


def _run(code, *args):
    import os

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_a_pytorch_run_never_loads_tensorflow(tmp_path):
    """With TensorFlow installed, TorchLogger and an mmengine Runner with TensorboardVisBackend
    write their runs without importing TensorFlow (torch_adapter/no_tensorflow.py), and the
    files read back as before."""
    import os

    from unitb import reader

    assert _run(NO_TF_TORCH, tmp_path / "torch") == "False"
    assert [s for s, _ in reader.scalars(str(tmp_path / "torch"))["train/loss"]] == [1, 2, 3, 4, 5]
    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    assert _run(NO_TF_MMENGINE, tmp_path / "work", examples) == "False"
    (vis,) = [os.path.join(d) for d, _dirs, files in os.walk(tmp_path / "work") if reader.event_files(d)]
    assert [s for s, _ in reader.scalars(vis)["train/loss"]][:4] == [1, 2, 3, 4]


def test_tensorflow_used_on_purpose_after_torch_adapter_still_works(tmp_path):
    from unitb import reader

    assert _run(TF_AFTER_TORCH, tmp_path) == "ok"
    assert reader.scalars(str(tmp_path / "plain"))["x"] == [(1, 1.0)]
    assert [s for s, _ in reader.scalars(str(tmp_path / "keras"))["train/loss"]] == [1, 2]
