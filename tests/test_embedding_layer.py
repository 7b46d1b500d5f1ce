"""embedding_layer=: a named layer's outputs on validation samples reach the PROJECTOR from the
mmengine hook and from TFCallback, equal to the layer's outputs computed independently."""
import glob
import os

import numpy as np
import pytest
import torch

import unitb


def _tensors(run_dir, step):
    path = os.path.join(run_dir, "projector", "val_features", f"{step:08d}", "tensors.tsv")
    return np.loadtxt(path, delimiter="\t", ndmin=2)


def test_the_hook_embeds_the_backbone_at_each_validation(tmp_path):
    import mmengine_pose

    runner = mmengine_pose.build_runner(str(tmp_path), steps=16, hook=dict(embedding_layer="backbone"))
    runner.train()
    run_dir = mmengine_pose.vis_dir(str(tmp_path))
    steps = sorted(int(os.path.basename(p)) for p in glob.glob(os.path.join(run_dir, "projector", "val_features", "*")))
    assert steps == [8, 16]
    model = runner.model.eval()
    witness = []
    with torch.no_grad():
        for batch in runner.val_dataloader:
            inputs = model.data_preprocessor(batch, False)["inputs"]
            witness.append(model.backbone(inputs).float().mean(dim=(2, 3)).numpy())
    np.testing.assert_allclose(_tensors(run_dir, 16), np.concatenate(witness), rtol=1e-5, atol=1e-6)
    with open(os.path.join(run_dir, "projector", "val_features", "00000016", "metadata.tsv")) as handle:
        oks = [float(line) for line in handle]  # one column: no header row (TensorBoard refuses one)
    assert len(oks) == 16 and all(0 <= value <= 1 for value in oks)


def test_a_wrong_layer_name_is_one_warning_and_training_goes_on(tmp_path):
    import logging

    import mmengine_pose
    from mmengine.logging import MMLogger

    runner = mmengine_pose.build_runner(str(tmp_path), steps=16, hook=dict(embedding_layer="backbon"))
    messages = []
    handler = type("Said", (logging.Handler,), {"emit": lambda self, record: messages.append(record.getMessage())})()
    MMLogger.get_current_instance().addHandler(handler)
    try:
        runner.train()
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    said = [m for m in messages if "embedding_layer" in m]
    assert len(said) == 1 and "did you mean 'backbone'" in said[0]
    assert not os.path.exists(os.path.join(mmengine_pose.vis_dir(str(tmp_path)), "projector"))
    assert runner.iter == 16


def test_tfcallback_embeds_a_named_layer_of_its_embedding_data(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(size=(24, 8, 8, 3)).astype("float32")
    y = x.mean(axis=(1, 2, 3))[:, None]
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    labels = ["bright" if v > 0.5 else "dark" for v in y[:, 0]]
    callback = unitb.TFCallback(str(tmp_path / "keras"), embedding_layer="conv", embedding_data=(x, labels))
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[callback], verbose=0)
    callback.close()
    witness = keras.Model(model.inputs, model.get_layer("conv").output)(x, training=False).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(_tensors(callback.run_dir, 6), witness, rtol=1e-5, atol=1e-6)
    assert os.path.exists(os.path.join(callback.run_dir, "projector", "val_features", "00000003", "sprite.png"))


def test_embedding_layer_is_refused_where_there_is_no_validation(tmp_path):
    with pytest.raises(ValueError, match="embedding_layer is for the mmengine hook and TFCallback"):
        unitb.TorchLogger(str(tmp_path), embedding_layer="fc")
    with pytest.raises(ValueError, match="needs embedding_data"):
        unitb.TFCallback(str(tmp_path), embedding_layer="dense")
