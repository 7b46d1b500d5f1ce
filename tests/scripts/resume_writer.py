"""One job of a run that is interrupted and resumed while another process may still hold the
run folder. It opens its logger at ``START`` (0: a fresh run, S: a resume from step S), logs
``train/loss = BASE + step`` for steps FIRST..LAST, flushes, leaves ``MARK.flushed``, then waits
for ``MARK.go`` (when given) before it logs steps FIRST2..LAST2 and closes.
Run by tests/test_resume_claims.py.

    resume_writer.py torch|tfloop|keras LOGDIR START BASE FIRST LAST RESUME_WAIT MARK [FIRST2 LAST2]

Keras trains one fit() of all its steps (its loss is its own; START sets the optimizer's
iterations, as a restored checkpoint does) and waits for ``MARK.go`` inside the fit.

Exit code 3 and ``busy: <message>`` on stdout when a torch resume is refused (FolderBusy).
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
kind, logdir = sys.argv[1], sys.argv[2]
start, base, first, last = (int(v) for v in sys.argv[3:7])
wait, mark = float(sys.argv[7]), sys.argv[8]
later = range(int(sys.argv[9]), int(sys.argv[10]) + 1) if len(sys.argv) > 10 else range(0)
go_together = os.environ.get("RESUME_GO")  # released with other jobs: wait for this file to open the logger
options = dict(scalar_interval=1, log_speed=False, log_model_stats=False, resume_wait=wait)



def wait_for(path: str) -> None:
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.005)


if kind == "torch":
    from torch_adapter import TorchLogger
    from unitb.folder.claim import FolderBusy

    if go_together:
        open(f"{go_together}.ready-{os.getpid()}", "w").close()
        wait_for(go_together)
    try:
        logger = TorchLogger(logdir, start_step=start, **options)
    except FolderBusy as exc:
        print("busy:", exc, flush=True)
        sys.exit(3)
    log = lambda step: logger.log_step(step, loss=float(base + step))  # noqa: E731
elif kind == "keras":
    import keras
    import numpy as np

    import unitb

    count = last - first + 1 + len(later)
    x = np.random.default_rng(base).normal(size=(8 * count, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    if start:
        model.optimizer.build(model.trainable_variables)
        model.optimizer.iterations.assign(start)
    callback = unitb.TFCallback(logdir, **options)

    def after_batch(batch, logs):
        if batch + 1 == last - first + 1:
            if callback.run is not None:
                callback.run.flush()
            print("run_dir", callback.run_dir, flush=True)
            open(mark + ".flushed", "w").close()
            if later:
                wait_for(mark + ".go")

    model.fit(x, np.zeros((8 * count, 2), "float32"), batch_size=8, epochs=1, verbose=0,
              callbacks=[callback, keras.callbacks.LambdaCallback(on_train_batch_end=after_batch)])
    callback.close()
    print("closed", flush=True)
    sys.exit(0)
else:
    import unitb

    logger = unitb.TFLogger(logdir, start_step=start, **options)
    log = lambda step: logger.log_train_step(step, losses={"loss": float(base + step)})  # noqa: E731

for step in range(first, last + 1):
    log(step)
logger.flush()
print("run_dir", logger.run_dir, flush=True)
with open(mark + ".flushed", "w"):
    pass
if later:
    wait_for(mark + ".go")
    for step in later:
        log(step)
logger.close()
print("closed", flush=True)
