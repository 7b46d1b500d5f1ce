"""activation_layers=: histograms of chosen layers' outputs (activations/{layer}) at the steps
gradient norms are written, from the training forward (torch) or the callback's inputs (Keras)."""
import numpy as np
import pytest
import torch

import unitb
from unitb import reader


def _histograms(run_dir, tag):
    return {r.step: np.asarray(r.value) for r in reader.read_run(run_dir) if r.tag == tag}


def test_torchlogger_histograms_the_training_forward_at_gradient_steps(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), 0.1)
    witness = {}
    model[0].register_forward_hook(lambda m, i, out: witness.__setitem__(len(witness) + 1, out.detach().numpy()))
    logger = unitb.TorchLogger(str(tmp_path), model, opt, grad_norm_interval=2, activation_layers=("0",))
    for step in range(1, 7):
        loss = model(torch.randn(16, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        logger.log_step(step, loss=loss)
    logger.close()
    histograms = _histograms(logger.run_dir, "activations/0")
    assert sorted(histograms) == [1, 2, 4, 6]
    for step, buckets in histograms.items():  # left, right, count per bucket
        assert buckets[:, 2].sum() == 16 * 8
        assert buckets[0, 0] == pytest.approx(witness[step].min(), abs=1e-5)
        assert buckets[-1, 1] == pytest.approx(witness[step].max(), abs=1e-5)


def test_the_hook_histograms_a_backbone(tmp_path):
    import mmengine_pose

    hook = dict(grad_norm_interval=4, activation_layers=("backbone",))
    mmengine_pose.build_runner(str(tmp_path), steps=8, hook=hook).train()
    tags = {r["tag"]: (r["count"], r["first_step"], r["last_step"])
            for r in reader.tag_summary(mmengine_pose.vis_dir(str(tmp_path)))}
    assert tags["activations/backbone"] == (3, 1, 8)  # steps 1, 4, 8: with the gradient norms


def test_tfcallback_histograms_named_layers_on_its_image_data(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = unitb.TFCallback(str(tmp_path), image_data=x[:5], grad_norm_interval=2, activation_layers=("hidden",))
    model.fit(x, x[:, :1], batch_size=4, epochs=1, callbacks=[callback], verbose=0)
    callback.close()
    histograms = _histograms(callback.run_dir, "activations/hidden")
    norms = [s for s, _ in reader.scalars(callback.run_dir)["train/gradient_norm/global"]]
    assert sorted(histograms) == norms and all(h[:, 2].sum() == 5 * 3 for h in histograms.values())
    final = model.get_layer("hidden")(x[:5]).numpy()
    assert histograms[max(histograms)][-1, 1] == pytest.approx(final.max(), abs=1e-5)


def test_tflogger_refuses_activation_layers(tmp_path):
    with pytest.raises(ValueError, match="activation_layers is for the mmengine hook"):
        unitb.TFLogger(str(tmp_path), activation_layers=("dense",))


def test_a_module_called_through_forward_directly_gets_one_warning(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(4, 4)
            self.head = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.head.forward(self.body(x))  # as mmpose heads are called: hooks never see it

    model = Net()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.warns(unitb.UnitbWarning, match="no training output was seen from 'head'") as caught:
        logger = unitb.TorchLogger(str(tmp_path), model, opt, grad_norm_interval=1, activation_layers=("body", "head"))
        for step in range(1, 4):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            logger.log_step(step, loss=loss)
        logger.close()
    assert sum("no training output" in str(w.message) for w in caught) == 1
    assert sorted(_histograms(logger.run_dir, "activations/body")) == [1, 2, 3]


def test_tfcallback_wrong_layer_names_are_one_warning_each_and_training_goes_on(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = unitb.TFCallback(str(tmp_path), image_data=x[:5], grad_norm_interval=2, weight_hist_interval=1,
                                activation_layers=("hidden", "hiden2"), embedding_layer="hidenn",
                                embedding_data=x[:8])
    with pytest.warns(unitb.UnitbWarning) as caught:
        model.fit(x, x[:, :1], batch_size=4, epochs=2, callbacks=[callback], verbose=0)
    callback.close()
    said = [str(w.message) for w in caught if "could not read" in str(w.message)]
    assert len(said) == 2
    assert any("activation_layers=['hidden', 'hiden2']:" in s and "did you mean 'hidden'" in s for s in said)
    assert any("embedding_layer='hidenn':" in s and "did you mean 'hidden'" in s for s in said)
    assert [s for s, _ in reader.scalars(callback.run_dir)["train/loss"]][-1] == 8  # training went on, logged
