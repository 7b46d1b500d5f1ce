"""log_embedding writes the PROJECTOR tab's files identically from both frameworks, and the
real TensorBoard server lists the embeddings with their labels and sprite."""
from __future__ import annotations

import filecmp
import os
import warnings

import numpy as np

from tb_server import tensorboard
from unitb import UnitbWarning


def _points():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 5)).astype("float32")
    labels = [f"person {i % 3}" for i in range(12)]
    images = (rng.random((12, 16, 16, 3)) * 255).astype("uint8")
    return features, labels, images


def test_both_frameworks_write_the_same_projector_files_and_tensorboard_shows_them(tmp_path):
    import torch

    import keras
    import unitb
    from torch_adapter import TorchLogger

    features, labels, images = _points()
    model = torch.nn.Linear(2, 1)
    log = TorchLogger(str(tmp_path / "logs" / "torch"), model, None, log_grad_norm=False, log_speed=False)
    log.log_step(4, loss=1.0)
    log.log_embedding("val/keypoint_features", torch.from_numpy(features), metadata=labels, images=images)
    log.log_embedding("val/two_columns", features, metadata={"who": labels, "index": list(range(12))})
    log.close()

    kmodel = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    kmodel.compile(optimizer="sgd", loss="mse")
    cb = unitb.TFCallback(str(tmp_path / "logs" / "keras"), log_speed=False)

    class Embed(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            cb.log_embedding("val/keypoint_features", features, metadata=labels, images=images)

    kmodel.fit(np.zeros((32, 2), "float32"), np.zeros((32, 1), "float32"), batch_size=8, callbacks=[Embed(), cb],
               verbose=0)
    cb.close()
    torch_dir = tmp_path / "logs" / "torch" / "projector" / "val_keypoint_features" / "00000004"
    keras_dir = tmp_path / "logs" / "keras" / "projector" / "val_keypoint_features" / "00000004"
    for name in ("tensors.tsv", "metadata.tsv", "sprite.png"):
        assert filecmp.cmp(torch_dir / name, keras_dir / name, shallow=False), name
    with tensorboard(str(tmp_path / "logs"), expect_runs=2) as tb:
        runs = tb.get("/data/plugin/projector/runs")
        assert sorted(runs) == ["keras", "torch"]
        info = tb.get("/data/plugin/projector/info", run="torch")
        by_name = {e["tensorName"]: e for e in info["embeddings"]}
        entry = by_name["val/keypoint_features (step 4)"]
        assert entry["tensorShape"] == ["12", "5"] or entry["tensorShape"] == [12, 5]
        assert entry["sprite"]["singleImageDim"] in (["16", "16"], [16, 16])
        assert "val/two_columns (step 4)" in by_name
        with __import__("urllib.request").request.urlopen(
                tb.base + "/data/plugin/projector/metadata?run=torch&name=val/keypoint_features%20(step%204)") as r:
            assert r.read().decode().splitlines()[:2] == ["person 0", "person 1"]


def test_bad_embeddings_are_one_warning_and_skipped(tmp_path):
    import torch

    from torch_adapter import TorchLogger

    log = TorchLogger(str(tmp_path / "r"), torch.nn.Linear(2, 1), None, log_grad_norm=False, log_speed=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            log.log_embedding("e/flat", np.zeros(5))
            log.log_embedding("e/labels", np.zeros((3, 2)), metadata=["a"])
            log.log_embedding("e/nan", np.full((3, 2), np.nan))
    log.close()
    said = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning)]
    assert len(said) == 3 and not os.path.exists(tmp_path / "r" / "projector")


def test_one_metadata_column_is_written_without_a_header(tmp_path):
    """TensorBoard's projector refuses a header row on a single column ("Number of tensors (16)
    do not match the number of lines in metadata (17)")."""
    from unitb.write import projector

    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    projector.write_embedding(str(tmp_path), "val/features", 5, features, {"oks": [0.1, 0.2, 0.3, 0.4]})
    projector.write_embedding(str(tmp_path), "val/two", 5, features, {"oks": [1, 2, 3, 4], "side": list("lrlr")})
    with open(tmp_path / "projector" / "val_features" / "00000005" / "metadata.tsv") as handle:
        assert handle.read().splitlines() == ["0.1", "0.2", "0.3", "0.4"]
    with open(tmp_path / "projector" / "val_two" / "00000005" / "metadata.tsv") as handle:
        assert handle.read().splitlines()[0] == "oks\tside"
