"""A Keras fit that a test kills hard (os._exit after step CRASH_AT) and starts again, the
way users restart jobs: with keras.callbacks.BackupAndRestore, or with ModelCheckpoint weights
loaded by hand and fit(initial_epoch=...). Run by tests/test_never_destroy.py.

    keras_restart.py OUT MODE CRASH_AT   MODE: backup-first | unitb-first | checkpoint | checkpoint-built
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import keras  # noqa: E402

import unitb  # noqa: E402

out, mode, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
STEPS_PER_EPOCH, EPOCHS = 4, 4
rng = np.random.default_rng(0)
x = rng.normal(size=(STEPS_PER_EPOCH * 8, 6)).astype("float32")
y = (x @ rng.normal(size=(6, 2))).astype("float32")
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="hidden"), keras.layers.Dense(2, name="out")])
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
logger = unitb.TFCallback(os.path.join(out, "run"), scalar_interval=1, grad_norm_interval=1)


class HardCrash(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if int(model.optimizer.iterations.numpy()) == crash_at:
            logger.run.flush()  # what the 5 s flush timer would have written by then
            os._exit(3)


callbacks = [HardCrash()] if crash_at > 0 else []
initial_epoch = 0
if mode in ("backup-first", "unitb-first"):
    backup = keras.callbacks.BackupAndRestore(os.path.join(out, "backup"))
    callbacks += [backup, logger] if mode == "backup-first" else [logger, backup]
else:
    ckpt_dir = os.path.join(out, "ckpt")
    saved = sorted(f for f in os.listdir(ckpt_dir)) if os.path.isdir(ckpt_dir) else []
    if saved:  # restart: the newest epoch's weights, training goes on from that epoch
        if mode == "checkpoint-built":
            model.optimizer.build(model.trainable_variables)  # then load_weights restores iterations too
        model.load_weights(os.path.join(ckpt_dir, saved[-1]))
        initial_epoch = int(saved[-1].split("-")[1].split(".")[0])
    callbacks += [keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, "epoch-{epoch:02d}.weights.h5"),
                                                  save_weights_only=True), logger]
model.fit(x, y, batch_size=8, epochs=EPOCHS, initial_epoch=initial_epoch, shuffle=False, verbose=0,
          callbacks=callbacks)
print("iterations", int(model.optimizer.iterations.numpy()))
