"""The promise, end to end: `unitb demo` writes three runs (mmpose or plain mmengine, Keras
fit, custom TF loop) that the real TensorBoard server shows as one layout, under both of its
loaders. Where mmpose is installed (CI installs it) the PyTorch run is the real mmpose one."""
import os
import re

import pytest

from unitb.files.names import EXPERIMENT_FOLDER

from tb_server import tensorboard
from unitb import schema
from unitb.commands import demo
from unitb.read import diff
from unitb import reader

TORCH_RUN = "mmpose-topdown" if demo.mmpose_installed() else "mmengine-pose"
RUNS = (TORCH_RUN, "keras-fit", "tf-yolo-loop")
CANONICAL_SCALARS = ("train/loss", "train/epoch", "train/gradient_norm/global", "model/total_parameters",
                     "model/trainable_parameters", "model/model_size_mb")




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
    coco = {tag: points for tag, points in reader.scalars(os.path.join(demo_root, TORCH_RUN)).items()
            if tag.startswith("val/coco/")}
    if TORCH_RUN == "mmpose-topdown":  # COCO's "not defined" (-1: no large objects here) is left out
        assert "val/coco/AP" in coco and "val/coco/AP_L" not in coco and "val/coco/AR_L" not in coco
        assert all(value != -1.0 for points in coco.values() for _step, value in points)


@pytest.mark.parametrize("load_fast", [True, False])
def test_tensorboard_server_shows_one_layout(demo_root, load_fast):
    with tensorboard(demo_root, load_fast=load_fast, expect_runs=3) as tb:
        runs = tb.get("/data/runs")
        # the HPARAMS experiment summary is a run named for what it holds
        assert sorted(runs) == sorted(RUNS + (EXPERIMENT_FOLDER,))
        scalar_tags = tb.get("/data/plugin/scalars/tags")
        histogram_tags = tb.get("/data/plugin/histograms/tags")
        image_tags = tb.get("/data/plugin/images/tags")
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


def test_hparams_tab_opens_on_the_shared_hyperparameters_and_every_val_metric(demo_root):
    """The HPARAMS tab through the real server: the demo declares one experiment for the log
    root (unitb hparams), so the tab ticks framework, model, optimizer, learning_rate and
    batch_size, and lists train/loss, val/loss and every val/* metric of both frameworks; unitb's
    own logging knobs and the runs' own long config keys are not columns (the TEXT tab has them)."""
    with tensorboard(demo_root, expect_runs=3) as tb:
        assert EXPERIMENT_FOLDER in tb.get("/data/runs")  # the experiment summary, a run named for it
        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True})
        infos = experiment["hparamInfos"]
        names = [info["name"] for info in infos]
        assert set(schema.HPARAM_KEYS) <= set(names)
        # The tab ticks the five declared first ("differs"), the first five metrics too.
        assert [info["name"] for info in infos if info.get("differs")] == [
            "batch_size", "framework", "learning_rate", "model", "optimizer"]
        assert not set(names) & {"grad_norm_interval", "max_layers_to_log", "optimizer.beta_1", "model.backbone.depth"}
        frameworks = next(info for info in infos if info["name"] == "framework")["domainDiscrete"]
        assert sorted(frameworks) == sorted(["pytorch-mmengine", "tensorflow-keras", "tensorflow-loop"])
        metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
        assert metrics[:2] == ["train/loss", "val/loss"]
        assert all(m.startswith("val/") for m in metrics[1:-2]) and "val/iou" in metrics
        assert metrics[-2:] == ["model/model_size_mb", "model/total_parameters"]  # constants: compared here
        if TORCH_RUN == "mmpose-topdown":  # the other framework's metrics are there too
            assert {"val/coco/AP", "val/PCK", "val/keypoints_mae"} <= set(metrics)
        groups = tb.post("/data/plugin/hparams/session_groups", {
            "experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                                                      "STATUS_RUNNING"],
            "colParams": [{"hparam": "framework"}, {"metric": {"tag": "train/loss"}}],
            "startIndex": 0, "sliceSize": 10})
        frameworks = sorted(g["hparams"]["framework"] for g in groups["sessionGroups"])
        assert frameworks == sorted(["pytorch-mmengine", "tensorflow-keras", "tensorflow-loop"])
        for group in groups["sessionGroups"]:  # every run has its train/loss in the table
            assert any(m["name"]["tag"] == "train/loss" for m in group["metricValues"]), group["name"]


def test_pr_curves_at_the_step_a_user_lands_on_show_a_trade_off(demo_root):
    """The PR CURVES tab opens on the last step: there, the demo's curves must not sit at
    precision 1 (its validation images are harder than its training ones)."""
    import numpy as np

    curves = [("tf-yolo-loop", "val/pr/boxes_iou50/pr_curves")]
    if TORCH_RUN == "mmpose-topdown":
        curves.append((TORCH_RUN, "val/pr/keypoints_oks75/pr_curves"))
    for run, tag in curves:
        rows = [r for r in reader.read_run(os.path.join(demo_root, run)) if r.tag == tag]
        data = np.asarray(max(rows, key=lambda r: r.step).value)
        true_pos, false_pos, precision = data[0], data[1], data[4]
        answered = precision[(true_pos + false_pos) > 0]
        assert answered.min() < 1.0 and answered.max() > 0.0, (run, tag, answered)
