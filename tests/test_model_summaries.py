"""tf.summary calls inside a Keras model, its train_step and another callback land in the unitb
run at unitb's step, on the steps unitb records its scalars, without a retrace per step."""
from __future__ import annotations

import numpy as np

import keras
import tensorflow as tf
import unitb
from unitb import reader

TRACES = []


class ActivationMean(keras.layers.Layer):
    def call(self, x):
        TRACES.append(1)  # Python runs only while the graph is traced
        tf.summary.scalar("my/activation_mean", tf.reduce_mean(x))
        tf.summary.histogram("my/activations", x)
        return x


class WithOwnTrainStep(keras.Sequential):
    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y, y_pred=self(x, training=True))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        tf.summary.scalar("my/train_step_loss", loss)
        for metric in self.metrics:  # as Keras' guide does: the loss tracker holds the loss
            if metric.name == "loss":
                metric.update_state(loss)
        return {m.name: m.result() for m in self.metrics}


def _model():
    keras.utils.set_random_seed(0)
    model = WithOwnTrainStep([keras.Input((6,)), keras.layers.Dense(8, name="hidden"), ActivationMean(),
                              keras.layers.Dense(2, name="out")])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_tf_summary_in_call_and_train_step_at_unitbs_steps(tmp_path):
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    y = np.zeros((64, 2), "float32")
    model = _model()
    cb = unitb.TFCallback(str(tmp_path / "run"), scalar_interval=4, log_speed=False)
    TRACES.clear()
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[cb], verbose=0)  # 16 steps
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)  # steps 17..24, same graph
    cb.close()
    traced = len(TRACES)
    assert traced <= 2, traced  # traced once for fit (plus Keras' build call), never per step
    scalars = reader.scalars(cb.run_dir)
    due = [1, 4, 8, 12, 16, 20, 24]
    assert [s for s, _ in scalars["train/loss"]] == due
    # Inside a layer TensorFlow prefixes the layer's name scope (as under Keras' own callback).
    (in_layer,) = [t for t in scalars if t.endswith("/my/activation_mean")]
    assert [s for s, _ in scalars[in_layer]] == due
    assert [s for s, _ in scalars["my/train_step_loss"]] == due
    hist_steps = sorted({r.step for r in reader.read_run(cb.run_dir) if r.tag.endswith("/my/activations")})
    assert hist_steps == due
    # The train step's own loss at a step is the loss Keras reports for that step's batch.
    ours = dict(scalars["my/train_step_loss"])
    assert abs(ours[1] - dict(scalars["train/loss"])[1]) < 1e-4


def test_outside_a_fit_nothing_is_recorded_and_a_plain_fit_still_runs(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    y = np.zeros((16, 2), "float32")
    model = _model()
    cb = unitb.TFCallback(str(tmp_path / "run"), scalar_interval=1, log_speed=False)
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[cb], verbose=0)
    cb.close()
    before = reader.scalars(cb.run_dir)["my/train_step_loss"]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # no unitb callback: nothing recorded
    model.predict(x, verbose=0)
    assert [s for s, _ in before] == [1, 2] and reader.scalars(cb.run_dir)["my/train_step_loss"] == before


def test_a_mirror_never_uploads_an_empty_in_model_file(tmp_path):
    """The in-model writer is opened at every fit and its file removed at the end when the model
    wrote nothing; a URL run's mirror uploading in between would leave it in the store."""
    import tensorflow as tf

    from tf_adapter import model_summaries
    from unitb.store import mirror

    assert mirror.IN_MODEL_SUFFIX == model_summaries.SUFFIX
    writer = tf.summary.create_file_writer(str(tmp_path), filename_suffix=model_summaries.SUFFIX)
    writer.flush()
    assert mirror.local_files(str(tmp_path)) == {}
    with writer.as_default():
        tf.summary.scalar("my/value", 1.0, step=1)
    writer.flush()
    assert len(mirror.local_files(str(tmp_path))) == 1
