"""TFCallback under the settings users turn on: mixed precision, steps_per_execution,
gradient accumulation, a model trained before unitb was attached, many fits in one process.
Real Keras fit, event files read back, values checked against independent witnesses."""
import logging
import warnings

import numpy as np
import pytest

import keras
import tensorflow as tf

import unitb
from unitb import reader


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x @ rng.normal(size=(6, 2))).astype(np.float32)
    return x, y


def _model(optimizer=None, **compile_kwargs):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                              keras.layers.Dense(2, name="out", dtype="float32")])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.01), loss="mse", **compile_kwargs)
    return model


def _values(rows, tag):
    return {r.step: r.value for r in rows if r.tag == tag}


def _grads(model, weights, x, y):
    """Gradients of a batch at the given weights, computed independently of fit()."""
    for var, value in zip(model.trainable_weights, weights):
        var.assign(value)
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, tf.cast(model(x, training=True), tf.float32))
    return [tf.cast(g, tf.float32) for g in tape.gradient(loss, model.trainable_weights)]


@pytest.fixture
def mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_logs_unscaled_norms_and_the_loss_scale(tmp_path, mixed_precision):
    x, y = _data()
    model = _model()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    initial = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    rows = reader.read_run(str(tmp_path))
    witness = float(tf.linalg.global_norm(_grads(_model(), initial, x[:8], y[:8])))
    logged = _values(rows, "train/gradient_norm/global")
    assert sorted(logged) == list(range(1, 9))
    assert logged[1] == pytest.approx(witness, rel=2e-2)  # float16 compute: not 32768x
    scale = _values(rows, "train/loss_scale")
    assert sorted(scale) == list(range(1, 9)) and scale[1] == 32768.0
    assert not [r.tag for r in rows if r.tag.startswith("train/anomaly")]


def test_a_skipped_loss_scaled_update_is_not_an_anomaly(tmp_path, mixed_precision):
    x, y = _data(n=160)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), initial_scale=2.0 ** 24)
    model = _model(optimizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0,
                  callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    rows = reader.read_run(str(tmp_path))
    scale = _values(rows, "train/loss_scale")
    assert scale[1] < 2.0 ** 24  # the scaler skipped the first updates and lowered the scale
    norms = _values(rows, "train/gradient_norm/global")
    assert norms and all(np.isfinite(v) and v < 1e3 for v in norms.values())
    assert min(norms) > 1  # no norm for the skipped steps: nothing was applied there
    assert not [r.tag for r in rows if r.tag.startswith("train/anomaly")]
    assert not [w for w in caught if "non-finite" in str(w.message)]


def test_steps_per_execution_keeps_every_due_point(tmp_path):
    x, y = _data(n=320)
    model = _model(steps_per_execution=32)
    initial = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=1, epochs=1, shuffle=False, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path))])  # defaults: every 100 steps
    rows = reader.read_run(str(tmp_path))
    assert sorted(_values(rows, "train/gradient_norm/global")) == [1, 100, 200, 300]
    assert sorted(_values(rows, "train/loss")) == [1, 100, 200, 300]
    lr = _values(rows, "train/learning_rate/0")
    assert sorted(lr) == [1, 100, 200, 300]
    witness = float(tf.linalg.global_norm(_grads(_model(), initial, x[:1], y[:1])))
    assert _values(rows, "train/gradient_norm/global")[1] == pytest.approx(witness, rel=1e-5)


def test_steps_per_execution_with_every_step_due(tmp_path):
    x, y = _data(n=32)
    model = _model(steps_per_execution=4)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    rows = reader.read_run(str(tmp_path))
    assert sorted(_values(rows, "train/gradient_norm/global")) == list(range(1, 17))
    # Keras reports loss once per block of 4: one point per block, at its last due step.
    assert sorted(_values(rows, "train/loss")) == [4, 8, 12, 16]


def test_gradient_accumulation_logs_the_applied_update_on_the_iteration_axis(tmp_path):
    x, y = _data(n=32)
    model = _model(keras.optimizers.SGD(0.01, gradient_accumulation_steps=2))
    initial = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    rows = reader.read_run(str(tmp_path))
    assert sorted(_values(rows, "train/loss")) == list(range(1, 9))  # iterations = micro-batches
    norms = _values(rows, "train/gradient_norm/global")
    assert sorted(norms) == [2, 4, 6, 8]  # the iterations that applied an update
    twin = _model()
    g1, g2 = _grads(twin, initial, x[:4], y[:4]), _grads(twin, initial, x[4:8], y[4:8])
    applied = [(a + b) / 2 for a, b in zip(g1, g2)]  # what the optimizer applied at iteration 2
    assert norms[2] == pytest.approx(float(tf.linalg.global_norm(applied)), rel=1e-5)


def test_a_model_trained_before_unitb_was_attached(tmp_path, no_unitb_warnings):
    x, y = _data(n=32)
    model = _model()
    model.fit(x, y, batch_size=8, epochs=3, verbose=0)  # 12 steps without unitb
    model.fit(x[:8], y[:8], batch_size=8, epochs=10, shuffle=False, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=4, scalar_interval=2)])
    rows = reader.read_run(str(tmp_path))
    assert sorted(_values(rows, "train/gradient_norm/global")) == [16, 20]
    assert sorted(_values(rows, "train/loss")) == [14, 16, 18, 20, 22]
    assert all(v > 0 for v in _values(rows, "train/gradient_norm/global").values())


def test_many_fits_in_one_process_do_not_retrace_or_warn(tmp_path, no_unitb_warnings):
    """Six models of one architecture: each logs into its own ring through the measuring branch
    they share (traced once per gradient shapes, given each ring as a handle)."""
    x, y = _data(n=16)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    tf.get_logger().addHandler(handler)
    try:
        for index in range(6):
            model = _model()
            for _ in range(2):
                model.fit(x, y, batch_size=4, epochs=1, verbose=0,
                          callbacks=[unitb.TFCallback(str(tmp_path / f"m{index}"), grad_norm_interval=2,
                                                      scalar_interval=1)])
            rows = reader.read_run(str(tmp_path / f"m{index}"))
            assert sorted(_values(rows, "train/gradient_norm/global")) == [1, 2, 4, 6, 8]
            assert sorted(_values(rows, "train/loss")) == list(range(1, 9))
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]


def test_xla_compiled_steps_log_the_applied_norms(tmp_path):
    """``jit_compile=True``, what Keras picks on a GPU ("auto"): the counter, the flags and the
    measuring branch compile with the step, here inside a steps_per_execution loop."""
    x, y = _data(n=16)
    model = _model(jit_compile=True, steps_per_execution=2)
    witness = float(tf.linalg.global_norm(_grads(model, [w.numpy() for w in model.trainable_weights], x[:4], y[:4])))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    assert model.jit_compile
    norms = _values(reader.read_run(str(tmp_path)), "train/gradient_norm/global")
    assert sorted(norms) == [1, 2, 3, 4]
    assert norms[1] == pytest.approx(witness, rel=1e-5)


def test_tf_logger_custom_loop_with_a_loss_scale_optimizer(tmp_path, no_unitb_warnings):
    x, y = _data(n=16)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, name="out")])
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01))
    optimizer.build(model.trainable_variables)
    logger = unitb.TFLogger(str(tmp_path), grad_norm_interval=1, scalar_interval=1)
    witness = {}
    for step in range(1, 4):
        with tf.GradientTape(persistent=True) as tape:
            loss = keras.losses.MeanSquaredError()(y[:8], model(x[:8]))
            scaled = optimizer.scale_loss(loss)
        witness[step] = float(tf.linalg.global_norm(tape.gradient(loss, model.trainable_variables)))
        grads = tape.gradient(scaled, model.trainable_variables)
        scale = optimizer.dynamic_scale.numpy()
        optimizer.apply(grads, model.trainable_variables)
        logger.log_train_step(step, losses={"total": loss}, grads=grads, variables=model.trainable_variables,
                              loss_scale=scale)
    logger.close()
    rows = reader.read_run(str(tmp_path))
    norms = _values(rows, "train/gradient_norm/global")
    assert all(norms[s] == pytest.approx(witness[s], rel=1e-5) for s in (1, 2, 3))
    assert _values(rows, "train/loss_scale") == {1: 32768.0, 2: 32768.0, 3: 32768.0}


def _count_traces(model):
    traced = [0]
    original = model.train_step

    def train_step(data):
        traced[0] += 1
        return original(data)

    model.train_step = train_step
    return traced


def test_adam_train_step_is_traced_once_and_norms_stay_exact(tmp_path):
    """Keras builds Adam's slots inside the first trace and TensorFlow then traces the step
    again; TFCallback builds them first, so fit() traces once. The norms are unchanged."""
    x, y = _data(32)
    plain = _model(keras.optimizers.Adam(0.01))
    plain_traces = _count_traces(plain)
    plain.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert plain_traces[0] == 2  # Keras alone (the cost this saves)
    model = _model(keras.optimizers.Adam(0.01))
    initial = [w.numpy().copy() for w in model.trainable_weights]
    traces = _count_traces(model)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=1, scalar_interval=1)])
    assert traces[0] == 1
    assert [w.numpy().tolist() for w in model.trainable_weights] == [w.numpy().tolist() for w in plain.trainable_weights]
    norms = _values(reader.read_run(str(tmp_path)), "train/gradient_norm/global")
    witness = _model(keras.optimizers.Adam(0.01))
    expected = np.sqrt(sum(float(np.sum(g.numpy() ** 2)) for g in _grads(witness, initial, x[:8], y[:8])))
    assert norms[1] == pytest.approx(expected, rel=1e-5)


def test_subclassed_model_built_by_its_first_batch(tmp_path):
    """No Input: the model has no variables until fit() calls it, so the optimizer is left to
    Keras (building it on an empty variable list would break apply)."""

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(4, name="hidden")
            self.out = keras.layers.Dense(2, name="out")

        def call(self, inputs):
            return self.out(self.hidden(inputs))

    x, y = _data(32)
    keras.utils.set_random_seed(1)
    model = Net()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0,
              callbacks=[unitb.TFCallback(str(tmp_path), grad_norm_interval=2, scalar_interval=2)])
    rows = reader.read_run(str(tmp_path))
    assert sorted(_values(rows, "train/gradient_norm/global")) == [1, 2, 4]
    assert all(np.isfinite(v) and v > 0 for v in _values(rows, "train/gradient_norm/global").values())
