import pytest

from unitb import schema


def test_canonical_tags_for_every_family():
    assert schema.TRAIN_LOSS == "train/loss"
    from unitb.life.train_step import split_train_values

    assert split_train_values({"total": 1.0}).total_name == "total"  # alone, a total name is train/loss
    assert split_train_values({"loss": 1.0}).total_name == "loss"
    assert schema.loss_component("loss_kpt") == "train/loss/kpt"
    assert schema.loss_component("coord") == "train/loss/coord"
    assert schema.loss_component("keypoints_loss") == "train/loss/keypoints"
    assert schema.learning_rate(0) == "train/learning_rate/0"
    assert schema.learning_rate("backbone") == "train/learning_rate/backbone"
    assert schema.GRAD_NORM_GLOBAL == "train/gradient_norm/global"
    assert schema.grad_norm_layer("backbone.layer1.0.conv1.weight") == \
        "train/gradient_norm/layers/backbone.layer1.0.conv1.weight"
    assert schema.TRAIN_EPOCH == "train/epoch"
    assert schema.metric("val", "coco/AP") == "val/coco/AP"
    assert schema.metric("val", "val_loss") == "val/loss"
    assert schema.metric("val", "loss") == "val/loss"
    assert schema.metric("train", "mae") == "train/mae"
    assert schema.MODEL_TOTAL_PARAMETERS == "model/total_parameters"
    assert schema.MODEL_TRAINABLE_PARAMETERS == "model/trainable_parameters"
    assert schema.MODEL_SIZE_MB == "model/model_size_mb"
    assert schema.weights_histogram("dense/kernel:0") == "weights/dense.kernel"
    assert schema.gradients_histogram("module.head.bias") == "gradients/head.bias"
    assert schema.image("train") == "train/image" and schema.image("val") == "val/image"
    assert schema.CONFIG == "config"
    assert schema.anomaly("loss") == "train/anomaly/loss"
    with pytest.raises(ValueError, match="split"):
        schema.metric("test", "x")


@pytest.mark.parametrize("raw, expected", [
    ("dense/kernel", "dense.kernel"),
    ("dense/kernel:0", "dense.kernel"),
    ("module.backbone.conv1.weight", "backbone.conv1.weight"),
    ("backbone.layer1.0.conv1.weight", "backbone.layer1.0.conv1.weight"),
    ("conv 1/weight", "conv_1.weight"),
])
def test_layer_names_use_dots_on_both_sides(raw, expected):
    assert schema.layer_name(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("a b", "a_b"), ("//x//y/", "x/y"), ("café", "cafe"), ("损失", "_"), ("", "_"), (3, "3"),
    ("coco/AP (L)", "coco/AP_L"), ("coco/AP .5", "coco/AP_.5"), ("a  (b)/c", "a_b/c"), ("损失/a", "_/a"),
    ("loss_", "loss_"),
])
def test_sanitize(raw, expected):
    assert schema.sanitize(raw) == expected


@pytest.mark.parametrize("tag, family", [
    ("train/loss", "train/loss"), ("train/loss/kpt", "train/loss/*"),
    ("train/learning_rate/0", "train/learning_rate/*"),
    ("train/gradient_norm/global", "train/gradient_norm/global"),
    ("train/gradient_norm/layers/a.b", "train/gradient_norm/layers/*"),
    ("train/epoch", "train/epoch"), ("train/acc_pose", "train/*"), ("val/PCK", "val/*"),
    ("val/loss", "val/loss"), ("model/total_parameters", "model/*"), ("weights/a", "weights/*"),
    ("gradients/a", "gradients/*"), ("train/image", "train/image"), ("val/image", "val/image"),
    ("config", "config"), ("_hparams_/session_start_info", "hparams"),
    ("custom_scalars__config__", "custom_scalars"), ("loss", None), ("lr", None), ("data_time", None),
])
def test_family_of(tag, family):
    assert schema.family_of(tag) == family


def test_layout_covers_the_shared_charts():
    layout = schema.custom_scalars_layout()
    tags = [t for charts in layout.values() for chart in charts for t in chart["tags"]]
    assert r"^train/loss$" in tags and r"^val/loss$" in tags
    assert any("learning_rate" in t for t in tags) and any("gradient_norm" in t for t in tags)


def test_hparams_dict_keeps_every_key_and_says_what_it_cannot_show():
    import numpy as np

    said = []
    out = schema.hparams_dict({"framework": "x", "learning_rate": np.float32(0.5), "backbone": "resnet18",
                               "input_size": (192, 256), "amp": True, "batch_size": None}, warn=said.append)
    assert out == {"framework": "x", "learning_rate": 0.5, "backbone": "resnet18", "input_size": "(192, 256)",
                   "amp": True}
    assert len(said) == 1 and "'batch_size'" in said[0]
