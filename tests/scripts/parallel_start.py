"""One job of a sweep whose launcher gave every job the same logdir. It imports its framework,
then says it is ready and waits for the GO file, so that all jobs open their run at the same moment, and trains
STEPS steps logging ``train/loss = JOB * 1000 + step`` (a value that says which job wrote it;
under Keras ``train/job = JOB * 1000``).
Run by tests/test_parallel_starts.py.

    parallel_start.py torch|keras|tfloop LOGDIR GO_FILE JOB STEPS
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
kind, logdir, go_file, job, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

if kind == "torch":
    import torch
    from torch_adapter import TorchLogger
else:
    import numpy as np
    import tensorflow as tf
    import keras
    import unitb


def wait_for_go() -> None:
    with open(f"{go_file}.ready-{job}", "w"):
        pass  # imports done: the test releases every job together once all are here
    deadline = time.monotonic() + 300
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            sys.exit("no GO file")
        time.sleep(0.005)


if kind == "torch":
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), 0.1)
    wait_for_go()
    logger = TorchLogger(logdir, model, optimizer, scalar_interval=1, log_speed=False)
    for step in range(1, steps + 1):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        logger.log_step(step, loss=float(job * 1000 + step))
    logger.close()
    print("run_dir", logger.run_dir)
elif kind == "tfloop":
    wait_for_go()
    logger = unitb.TFLogger(logdir, start_step=0, scalar_interval=1, log_speed=False)
    for step in range(1, steps + 1):
        logger.log_train_step(step, losses={"loss": float(job * 1000 + step)})
    logger.close()
    print("run_dir", logger.run_dir)
else:
    # Keras writes its own loss as train/loss; the job's mark rides on a metric, train/job.
    x = np.random.default_rng(job).normal(size=(8 * steps, 4)).astype("float32")
    y = np.zeros((8 * steps, 2), "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    job_metric = keras.metrics.MeanMetricWrapper(
        lambda y_true, y_pred: tf.fill([tf.shape(y_true)[0]], float(job * 1000)), name="job")
    model.compile(optimizer="sgd", loss="mse", metrics=[job_metric])
    callback = unitb.TFCallback(logdir, scalar_interval=1, log_speed=False)
    wait_for_go()
    model.fit(x, y, batch_size=8, epochs=1, callbacks=[callback], verbose=0)
    callback.close()
    print("run_dir", callback.run_dir)
