"""A TorchLogger run with W&B (offline) that is killed hard right after the forwarder sent its
steps to W&B (``run.log`` returned), or resumed from a checkpoint and closed.
Run by tests/test_backends.py.

    wandb_kill.py LOGDIR WANDB_DIR START LAST kill|close
"""
import os
import signal
import sys
import time

from torch_adapter import TorchLogger
from unitb.backends import forwarder as backends

logdir, wandb_dir, start, last, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
logger = TorchLogger(logdir, start_step=start, scalar_interval=1, log_speed=False, log_model_stats=False,
                     backends={"wandb": {"project": "kill", "dir": wandb_dir}})
for step in range(start + 1, last + 1):
    logger.log_step(step, loss=float(1000 * (start > 0) + step))
logger.flush()
if end == "kill":
    deadline = time.monotonic() + 60
    while backends.read_state(logger.run_dir).get("wandb", {}).get("sent_step", -1) < last - 1:
        assert time.monotonic() < deadline, "the forwarder never sent"
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)  # run.log() has returned; W&B may not have written the rows yet
logger.close()
