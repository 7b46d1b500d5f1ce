"""Train the tiny mmpose config and die hard (os._exit) right after step CRASH_AT, as a killed
job would: the events up to that step are on disk, the epoch-1 checkpoint is the last one.
Run by tests/test_mmpose.py."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "mmpose"))

import train  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

out, crash_at = sys.argv[1], int(sys.argv[2])
runner = train.build_runner(out, max_epochs=2)


class HardCrash(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == crash_at:
            unitb_hook = next(h for h in runner.hooks if type(h).__name__ == "EnhancedTensorBoardHook")
            unitb_hook.recorder.run.flush()  # what the 5 s flush timer would have written by then
            runner.visualizer.get_backend("TensorboardVisBackend").experiment.flush()
            os._exit(3)


runner.register_hook(HardCrash(), priority="LOWEST")  # after unitb's hook has logged the step
runner.train()
