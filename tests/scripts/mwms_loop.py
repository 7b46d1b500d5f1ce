"""One worker of a 2-worker tf.distribute.MultiWorkerMirroredStrategy custom training loop on
localhost (TF_CONFIG set by tests/test_tf_logger.py), logged with TFLogger on every worker;
only the chief may write. Keras 3 model.fit does not run under this strategy on this stack
(keras-team/keras#20585), so the loop is the multi-worker path users have. Writes OUT/report{index}.json."""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import tensorflow as tf  # noqa: E402

logdir, out = sys.argv[1], sys.argv[2]
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()
import keras  # noqa: E402

import unitb  # noqa: E402

GLOBAL_BATCH = 8
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
y = x.sum(1, keepdims=True)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
    optimizer = keras.optimizers.SGD(0.01)
    optimizer.build(model.trainable_variables)


@tf.function
def train_step(batch):
    def replica_step(features, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(features) - labels)) / GLOBAL_BATCH
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)  # Keras sums the replicas' gradients
        return loss, grads
    return strategy.run(replica_step, args=batch)


held = np.ones(300 * 2 ** 20, np.uint8) if index == 1 else None  # tells worker 1's machine figures apart
logger = unitb.TFLogger(logdir, grad_norm_interval=1, scalar_interval=1, system_interval=0.1)
expected, witness = {}, {}
step = 0
for epoch in range(2):
    for batch in strategy.experimental_distribute_dataset(data):
        step += 1
        if step == 1:
            kernel, bias = [w.numpy() for w in model.trainable_variables]
            residual = x[:8] @ kernel + bias - y[:8]
            witness[1] = float(np.sqrt(np.sum((2 / 8 * x[:8].T @ residual) ** 2)
                                       + np.sum((2 / 8 * residual.sum(0)) ** 2)))
        per_replica_loss, per_replica_grads = train_step(batch)
        # What the update applied: the sum over replicas (a collective: every worker runs it).
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)
        grads = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in per_replica_grads]
        expected[step] = float(loss)
        logger.log_train_step(step, losses={"total": loss}, grads=grads, variables=model.trainable_variables)
        time.sleep(0.15)  # a few samples of the machine a step
logger.close()
with open(os.path.join(out, f"report{index}.json"), "w") as handle:
    json.dump({"index": index, "replicas": strategy.num_replicas_in_sync, "enabled": logger.enabled,
               "loss": expected, "witness": witness,
               "rss_mb": psutil.Process().memory_info().rss / 2 ** 20}, handle)
