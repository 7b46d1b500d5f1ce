"""The promise, end to end: `unitb demo` writes three runs (mmpose or plain mmengine, Keras
fit, custom TF loop) that the real TensorBoard server shows as one layout, under both of its
loaders. Where mmpose is installed (CI installs it) the PyTorch run is the real mmpose one."""
import os
import re
import subprocess
import sys

import pytest

from tb_server import tensorboard
from unitb import demo, diff, reader, schema

TORCH_RUN = "mmpose-topdown" if demo.mmpose_installed() else "mmengine-pose"
RUNS = (TORCH_RUN, "keras-fit", "tf-yolo-loop")
CANONICAL_SCALARS = ("train/loss", "train/epoch", "train/gradient_norm/global", "model/total_parameters",
                     "model/trainable_parameters", "model/model_size_mb")


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out = subprocess.run([sys.executable, "-m", "unitb", "demo", "--out", str(root), "--steps", "24"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"[1/3] {TORCH_RUN}" in out.stdout and "[3/3] tf-yolo-loop" in out.stdout
    assert ("mmpose is not installed" in out.stdout) == (TORCH_RUN == "mmengine-pose")
    assert "parity: OK" in out.stdout
    assert f"tensorboard --logdir {root}" in out.stdout
    return str(root)


def test_demo_runs_have_parity_by_unitb_diff(demo_root):
    layouts = [diff.layout_of(os.path.join(demo_root, run)) for run in RUNS]
    report = diff.compare(layouts)
    assert report.ok, report.mismatches
    for layout in layouts:
        for family in ("train/loss", "train/loss/*", "train/learning_rate/*", "train/gradient_norm/global",
                       "train/gradient_norm/layers/*", "train/epoch", "val/*", "model/*", "weights/*",
                       "train/image", "val/image", "config", "hparams", "custom_scalars"):
            assert family in layout.families, (layout.path, family)
    assert len({l.layout for l in layouts}) == 1 and layouts[0].layout
    for layout in layouts:  # the shared names on every side (each run adds what it alone knows)
        assert set(schema.HPARAM_KEYS) - {"epochs"} <= set(layout.hparam_keys), layout.path


@pytest.mark.parametrize("load_fast", [True, False])
def test_tensorboard_server_shows_one_layout(demo_root, load_fast):
    with tensorboard(demo_root, load_fast=load_fast, expect_runs=3) as tb:
        runs = tb.get("/data/runs")
        assert sorted(runs) == sorted(RUNS)
        scalar_tags = tb.get("/data/plugin/scalars/tags")
        histogram_tags = tb.get("/data/plugin/histograms/tags")
        image_tags = tb.get("/data/plugin/images/tags")
        layouts = []
        for run in RUNS:
            tags = set(scalar_tags[run])
            assert set(CANONICAL_SCALARS) <= tags, (run, set(CANONICAL_SCALARS) - tags)
            assert any(t.startswith("train/learning_rate/") for t in tags)
            assert any(t.startswith("train/gradient_norm/layers/") for t in tags)
            assert any(re.match(r"^train/loss/.+", t) for t in tags)
            assert any(t.startswith("val/") for t in tags)
            assert any(t.startswith("weights/") for t in histogram_tags[run])
            assert {"train/image", "val/image"} <= {t.split("/image")[0] + "/image" for t in image_tags[run]}
            for tag in ("train/loss", "train/gradient_norm/global"):
                steps = tb.scalar_steps(run, tag)
                assert steps and steps[0] == 1 and all(b > a for a, b in zip(steps, steps[1:])), (run, tag)
            val_steps = tb.scalar_steps(run, next(t for t in sorted(tags) if t.startswith("val/")))
            assert min(val_steps) >= 1 and max(val_steps) <= max(tb.scalar_steps(run, "train/loss"))
        last_steps = set()
        for run in RUNS:
            tags = set(scalar_tags[run])
            # The page holds the schema only (mmengine's own LoggerHook tags stay out) ...
            assert not [t for t in tags if schema.family_of(t) is None], run
            # ... with the speed families on every side.
            assert {"train/time/step", "train/throughput", "train/memory/host_mb"} <= tags, run
            last_steps.add(max(tb.scalar_steps(run, "train/loss")))
            last_steps.add(max(tb.scalar_steps(run, next(t for t in sorted(tags) if t.startswith("val/")))))
        assert last_steps == {24}  # the three runs end at the same step
        layout = tb.get("/data/plugin/custom_scalars/layout")
        assert [c["title"] for c in layout["category"]] == ["unitb", "speed"]
        charts = [chart["title"] for chart in layout["category"][0]["chart"]]
        assert charts[:3] == ["loss (train vs val)", "loss components", "learning rate"]


def test_hparams_tab_shows_what_each_run_trained_with(demo_root):
    """The HPARAMS tab through the real server: the shared names line up, each run adds what
    only it knows (the mmpose config flattened, Keras' optimizer config), unitb's own logging
    knobs are not there, and the metric columns hold train/loss and every val/* metric."""
    with tensorboard(demo_root, expect_runs=3) as tb:
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True})
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert set(schema.HPARAM_KEYS) <= names
        assert not names & {"grad_norm_interval", "max_layers_to_log", "train_image_interval"}
        assert {"steps_per_execution", "mixed_precision_policy", "optimizer.beta_1"} <= names  # Keras
        assert "input_size" in names  # the YOLO loop's own
        if TORCH_RUN == "mmpose-topdown":
            assert {"model.backbone.depth", "codec.input_size", "optim_wrapper.optimizer.lr"} <= names
        metrics = {info["name"]["tag"] for info in experiment["metricInfos"]}
        assert "train/loss" in metrics and "val/loss" in metrics
        if TORCH_RUN == "mmpose-topdown":
            assert {"val/coco/AP", "val/PCK"} <= metrics
        groups = tb.post("/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                      "STATUS_RUNNING"],
            "colParams": [{"hparam": "framework"}, {"metric": {"tag": "train/loss"}}],
            "startIndex": 0, "sliceSize": 10})
        frameworks = sorted(g["hparams"]["framework"] for g in groups["sessionGroups"])
        assert frameworks == sorted(["pytorch-mmengine", "tensorflow-keras", "tensorflow-loop"])
        for group in groups["sessionGroups"]:  # every run has its train/loss in the table
            assert any(m["name"]["tag"] == "train/loss" for m in group["metricValues"]), group["name"]
