"""A custom TF loop (seed 004's shape: tf.train.Checkpoint + unitb.CheckpointManager + TFLogger)
that logs to an s3:// URL. Killed hard after step CRASH_AT (once the store has everything it
wrote, so the store holds orphans), then started again — with another UNITB_SPOOL, as on a
fresh machine — to restore the newest checkpoint. Run by tests/test_object_storage.py.

    s3_tf_loop.py URL CKPT_DIR TOTAL_STEPS CRASH_AT
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import unitb  # noqa: E402

url, ckpt_dir, total, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
x = tf.constant(rng.normal(size=(8, 4)).astype("float32"))
y = tf.constant(rng.normal(size=(8, 2)).astype("float32"))
w = tf.Variable(tf.zeros((4, 2)), name="w")
opt = tf.keras.optimizers.SGD(0.05)
ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), w=w, optimizer=opt)
manager = unitb.CheckpointManager(ckpt, ckpt_dir, save_every=8)
start = manager.restore_or_initialize()
logger = unitb.TFLogger(url, checkpoint_manager=manager, scalar_interval=1, upload_interval=0.3)
for step in range(start + 1, total + 1):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((x @ w - y) ** 2)
    grads = tape.gradient(loss, [w])
    opt.apply_gradients(zip(grads, [w]))
    ckpt.step.assign(step)
    logger.log_train_step(step, losses={"loss": loss}, learning_rate=0.05, grads=grads, variables=[w], epoch=step / 8)
    manager.maybe_save()
    if step == crash_at:
        logger.flush()
        mirror = logger.run.folder.mirror
        deadline = time.monotonic() + 30
        while mirror.pending() and time.monotonic() < deadline:  # the store holds steps 1..crash_at
            mirror.request_sync()
            time.sleep(0.2)
        os._exit(3)
logger.close()
print("run_dir", logger.run_dir)
