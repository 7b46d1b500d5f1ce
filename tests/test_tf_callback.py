"""unitb.TFCallback inside a real Keras fit; event files read back."""
import numpy as np
import pytest

import keras
import tensorflow as tf

import unitb
from unitb import reader


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 2))).astype(np.float32)
    return x, y


def _model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(2, name="out")])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse", metrics=["mae"])
    return model


def _steps(rows, tag):
    return [r.step for r in rows if r.tag == tag]


def _values(rows, tag):
    return {r.step: r.value for r in rows if r.tag == tag}


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("keras"))
    x, y = _data()
    vx, vy = _data(8, seed=1)
    model = _model()
    initial = [w.numpy().copy() for w in model.trainable_weights]
    cb = unitb.TFCallback(logdir, grad_norm_interval=3, scalar_interval=2, max_layers_to_log=3,
                          image_data=np.random.default_rng(0).random((2, 8, 8, 3)), train_image_interval=4)
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(vx, vy), callbacks=[cb], verbose=0, shuffle=False)
    rows_first = reader.read_run(logdir)
    model.fit(x, y, batch_size=8, epochs=1, validation_data=(vx, vy), callbacks=[cb], verbose=0, shuffle=False)
    cb.close()
    return model, logdir, reader.read_run(logdir), rows_first, initial, (x, y)


def test_fit_tags_and_steps(fit_run):
    _, logdir, rows, _, _, _ = fit_run
    assert len(reader.event_files(logdir)) == 2  # one per fit(), in one run directory
    assert _steps(rows, "train/loss") == [1, 2, 4, 6, 8, 10, 12]  # second fit continues at 9
    assert _steps(rows, "train/mae") == [1, 2, 4, 6, 8, 10, 12]
    assert _steps(rows, "train/gradient_norm/global") == [1, 3, 6, 9, 12]
    assert _steps(rows, "val/loss") == [4, 8, 12] and _steps(rows, "val/mae") == [4, 8, 12]
    assert sorted(r.tag for r in rows if r.tag.startswith("train/gradient_norm/layers/")) == sorted(
        f"train/gradient_norm/layers/{n}" for n in ("hidden.kernel", "out.kernel", "out.bias")
        for _ in range(5))
    assert _steps(rows, "weights/out.bias") == [4, 8, 12]
    assert _steps(rows, "train/image") == [1, 4, 8, 12]
    assert _values(rows, "train/epoch")[4] == 1.0
    tags = {r.tag for r in rows}
    assert {"config", "custom_scalars__config__", "_hparams_/session_start_info", "model/total_parameters",
            "model/trainable_parameters", "model/model_size_mb"} <= tags
    # the model statistics at step 0 and again at each fit's last step (a line, not one point)
    total = 6 * 8 + 8 + 8 * 2 + 2
    assert _values(rows, "model/total_parameters") == {0: total, 8: total, 12: total}


def test_learning_rate_follows_the_schedule(fit_run):
    _, _, rows, _, _, _ = fit_run
    lr = _values(rows, "train/learning_rate/0")
    for step, value in lr.items():  # the LR the update of this step used: schedule(step - 1)
        assert value == pytest.approx(0.05 * 0.5 ** ((step - 1) / 4), rel=1e-5), step


def _first_batch_gradients(twin, initial, x, y):
    """Gradients of the first batch (8 samples, no shuffle) at the model's initial weights:
    the independent witness of what the optimizer applied at step 1."""
    for var, value in zip(twin.trainable_weights, initial):
        var.assign(value)
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y[:8], twin(x[:8], training=True))
    return tape.gradient(loss, twin.trainable_weights)


def test_global_norm_equals_the_applied_gradients_at_step_one(fit_run):
    model, _, rows, _, initial, (x, y) = fit_run
    grads = _first_batch_gradients(_model(), initial, x, y)
    expected = float(tf.linalg.global_norm(grads))
    assert _values(rows, "train/gradient_norm/global")[1] == pytest.approx(expected, rel=1e-5)
    assert _values(rows, "train/gradient_norm/layers/out.bias")[1] == pytest.approx(float(tf.norm(grads[3])), rel=1e-5)


def test_a_resumed_fit_with_a_new_callback_continues_and_drops_orphans(tmp_path):
    x, y = _data()
    model = _model()
    logdir = str(tmp_path)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[unitb.TFCallback(logdir, grad_norm_interval=2,
                                                                          scalar_interval=1)], verbose=0)
    weights = model.get_weights()
    opt_state = [v.numpy() for v in model.optimizer.variables]
    # Crash simulation: the run continued to step 8 after a checkpoint taken at step 4.
    model.optimizer.iterations.assign(4)
    for var, value in zip(model.optimizer.variables, opt_state):
        if var is not model.optimizer.iterations:
            var.assign(value)
    model.set_weights(weights)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[unitb.TFCallback(logdir, grad_norm_interval=2,
                                                                          scalar_interval=1)], verbose=0)
    rows = reader.read_run(logdir)
    assert _steps(rows, "train/loss") == list(range(1, 9))
    assert _steps(rows, "model/total_parameters") == [0, 8]  # the crashed fit's point at 8 was an orphan


def test_bad_arguments_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="grad_norm_interval"):
        unitb.TFCallback(str(tmp_path), grad_norm_interval=-1)
    with pytest.raises(ValueError, match="did you mean"):
        unitb.TFCallback(str(tmp_path), log_weight_hists=True)
    with pytest.raises(ValueError, match="cannot create logdir"):
        unitb.TFCallback("/proc/unitb-cannot-exist/run")


@pytest.mark.parametrize("clip", [dict(global_clipnorm=0.05), dict(clipnorm=0.01), dict(clipvalue=0.001)])
def test_keras_clipping_logs_the_applied_and_the_pre_clip_norm(tmp_path, clip):
    x, y = _data()
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="hidden"), keras.layers.Dense(2, name="out")])
    model.compile(optimizer=keras.optimizers.SGD(0.01, **clip), loss="mse")
    initial = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    rows = reader.read_run(str(tmp_path))
    twin = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(2)])
    grads = _first_batch_gradients(twin, initial, x, y)
    pre = float(tf.linalg.global_norm(grads))
    if "global_clipnorm" in clip:
        applied = min(pre, 0.05)
    elif "clipnorm" in clip:
        applied = float(tf.norm(tf.stack([tf.minimum(tf.norm(g), 0.01) for g in grads])))
    else:
        applied = float(tf.linalg.global_norm([tf.clip_by_value(g, -0.001, 0.001) for g in grads]))
    assert _values(rows, "train/gradient_norm/pre_clip")[1] == pytest.approx(pre, rel=1e-5)
    assert _values(rows, "train/gradient_norm/global")[1] == pytest.approx(applied, rel=1e-5)


def test_a_second_callback_on_the_same_model_still_gets_gradient_norms(tmp_path):
    """Keras keeps the train function traced in the first fit(); it writes the first callback's
    norm ring, which a new callback must read instead of waiting for its own (regression: it
    logged no norms and warned about overwritten rows)."""
    import warnings

    x = np.random.default_rng(0).random((64, 8)).astype("float32")
    y = np.random.default_rng(1).random((64, 1)).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=[unitb.TFCallback(first, grad_norm_interval=2, scalar_interval=1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                  callbacks=[unitb.TFCallback(second, grad_norm_interval=2, scalar_interval=1)])
    assert _steps(reader.read_run(first), "train/gradient_norm/global") == [1, 2, 4, 6, 8]
    norms = _values(reader.read_run(second), "train/gradient_norm/global")
    assert sorted(norms) == [10, 12, 14, 16] and all(np.isfinite(v) and v > 0 for v in norms.values())
    assert not [w for w in caught if "overwritten" in str(w.message)]


def _generator_fit(logdir, epochs=2):
    """``fit`` on a dataset of unknown length: a Python generator behind tf.data (no cardinality)."""
    x, y = _data()

    def batches():
        for start in range(0, len(x), 8):
            yield x[start:start + 8], y[start:start + 8]

    dataset = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, 6), tf.float32), tf.TensorSpec((None, 2), tf.float32)))
    assert dataset.cardinality().numpy() == tf.data.UNKNOWN_CARDINALITY
    cb = unitb.TFCallback(logdir, scalar_interval=1, grad_norm_interval=2, log_speed=False)
    _model().fit(dataset, epochs=epochs, callbacks=[cb], verbose=0)
    cb.close()
    return reader.read_run(cb.run_dir)


def test_a_dataset_of_unknown_length_keeps_every_family(tmp_path):
    from unitb.read import diff

    rows = _generator_fit(str(tmp_path / "generator"))
    # The first epoch's length is unknown until it ends: whole epochs completed during it, the
    # fraction from then on (4 steps an epoch). Keras runs one more step function at the end
    # of such an epoch, which finds no data: it is not a step (8 steps, not 10).
    assert _values(rows, "train/epoch") == {1: 0.0, 2: 0.0, 3: 0.0, 4: 0.0, 5: 1.25, 6: 1.5, 7: 1.75, 8: 2.0}
    assert _steps(rows, "train/loss") == list(range(1, 9))
    assert _steps(rows, "train/gradient_norm/global") == [1, 2, 4, 6, 8]
    known = str(tmp_path / "arrays")
    x, y = _data()
    cb = unitb.TFCallback(known, scalar_interval=1, grad_norm_interval=2, log_speed=False)
    _model().fit(x, y, batch_size=8, epochs=2, callbacks=[cb], verbose=0, shuffle=False)
    cb.close()
    assert _values(reader.read_run(known), "train/epoch") == {s: s / 4 for s in range(1, 9)}
    report = diff.compare([diff.layout_of(cb.run_dir), diff.layout_of(str(tmp_path / "generator"))])
    assert report.ok, diff.format_report([diff.layout_of(cb.run_dir), diff.layout_of(str(tmp_path / "generator"))],
                                         report)


def test_your_own_hparams_reach_the_run_and_diff_calls_them_the_runs_own(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    from unitb.read import diff

    x, y = _data()
    plain, own = str(tmp_path / "plain"), str(tmp_path / "own")
    for logdir, extra in ((plain, None), (own, {"backbone": "resnet18", "input_size": (192, 256)})):
        cb = unitb.TFCallback(logdir, hparams=extra, log_speed=False)
        _model().fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
        cb.close()
    (content,) = [r.value for r in reader.read_run(own) if r.tag == "_hparams_/session_start_info"]
    shown = plugin_data_pb2.HParamsPluginData.FromString(bytes(content)).session_start_info.hparams
    assert shown["backbone"].string_value == "resnet18" and shown["input_size"].string_value == "(192, 256)"
    layouts = [diff.layout_of(plain), diff.layout_of(own)]
    report = diff.compare(layouts)
    assert report.ok, diff.format_report(layouts, report)
    assert any("hparams of the run's own" in n and "backbone" in n for n in report.notes)


class OwnTrainStepModel(keras.Model):
    """A train step that returns its own values and updates no compiled metric."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self(x, training=True) - y))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"loss": loss, "my_metric": loss * 2.0 + 1.0}


@pytest.mark.parametrize("beside_keras_tensorboard", [True, False])  # Keras' batch dispatch: inline / threaded
def test_a_custom_train_step_logs_what_it_returns_at_every_step(tmp_path, beside_keras_tensorboard):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    model = OwnTrainStepModel(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    x, y = _data(160, seed=4)
    y = y * 10 + 40  # a loss far from 0, so a 0 read from untouched metrics cannot pass for it
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: returned.append(
        {k: float(v) for k, v in logs.items()}))
    returned = []
    callbacks = [unitb.TFCallback(str(tmp_path / "unitb"), scalar_interval=1, log_speed=False), record]
    if beside_keras_tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(tmp_path / "keras"), update_freq=1))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    ours = reader.scalars(str(tmp_path / "unitb"))
    assert len(returned) == 40
    for name in ("loss", "my_metric"):
        steps, values = zip(*ours[f"train/{name}"])
        assert list(steps) == list(range(1, 41))  # every step, across both epochs
        assert list(values) == pytest.approx([r[name] for r in returned], rel=1e-6)
    if beside_keras_tensorboard:  # the same values as Keras' own callback's batch points
        theirs = reader.scalars(str(tmp_path / "keras" / "train"))
        for name in ("loss", "my_metric"):
            assert [s for s, _ in theirs[f"batch_{name}"]] == list(range(1, 41))
            assert [v for _, v in ours[f"train/{name}"]] == pytest.approx([v for _, v in theirs[f"batch_{name}"]],
                                                                           rel=1e-6)
