"""The benchmark script runs end to end (CI smoke run: sizes tiny, times not asserted)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_run_prints_the_table(tmp_path):
    out_file = tmp_path / "results.md"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--out",
                          str(out_file)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert out.returncode == 0, out.stderr[-3000:]
    table = out_file.read_text()
    for name in ("mmengine median step, hook at defaults", "training-thread CPU", "Keras fit, TFCallback at defaults", "grad norm (120 tensors)",
                 "scalar, time on the training thread", "histograms + image", "first-batch image cache",
                 "RSS growth", "URL logdir (s3://", "TensorFlow installed vs hidden", "your own scalars",
                 "sweep agent: time it adds between trials", "log_figure", "a sweep's logdir",
                 "as a whole process", "a later fit() of the same model"):
        assert name in table, name
    assert table.count("\n| ") >= 14
