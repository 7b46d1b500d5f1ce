import subprocess
import sys


def test_import_unitb_loads_no_framework():
    code = ("import importlib, pkgutil, sys, unitb\n"
            "for m in pkgutil.iter_modules(unitb.__path__): m.name == '__main__' or importlib.import_module('unitb.' + m.name)\n"
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reading_a_run_loads_no_framework(tmp_path):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from unitb import protos
    writer = EventFileWriter(str(tmp_path))
    writer.close()
    code = (f"import sys, unitb.reader as r; r.read_run({str(tmp_path)!r}); "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert protos  # the proto helpers import no framework either (checked in the subprocess below)
    code = ("import sys; from unitb import protos, schema; protos.custom_scalars_summary(schema.custom_scalars_layout());"
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
