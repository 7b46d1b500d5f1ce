"""The benchmark script runs end to end (CI smoke run: sizes tiny, times not asserted)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _suites():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        from run import SUITES
    finally:
        sys.path.pop(0)
    return list(SUITES)


def test_quick_benchmark_run_prints_the_table(tmp_path):
    # Every suite, in two processes side by side (times are not asserted: a quick run only shows
    # that each suite still runs), half the wall time of one process on two cores.
    suites = _suites()
    halves = [suites[0::2], suites[1::2]]
    runs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick", "--out",
                              str(tmp_path / f"results{i}.md"), "--only", *half], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
             for i, half in enumerate(halves)]
    for run in runs:
        _out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
    table = "".join((tmp_path / f"results{i}.md").read_text() for i in range(2))
    for name in ("mmengine median step, hook at defaults", "training-thread CPU", "Keras fit, TFCallback at defaults", "grad norm (120 tensors)",
                 "scalar, time on the training thread", "histograms + image", "first-batch image cache",
                 "RSS growth", "URL logdir (s3://", "TensorFlow installed vs hidden", "your own scalars",
                 "sweep agent: time it adds between trials", "log_figure", "a sweep's logdir",
                 "as a whole process", "a later fit() of the same model"):
        assert name in table, name
    assert table.count("\n| ") >= 14
