"""Train the tiny mmengine pose model into mmengine's default work_dir/<timestamp>/vis_data
and die hard (os._exit) right after step CRASH_AT; with CRASH_AT 0, resume=True and finish.
With OUT_DIR (a URL), the hook uploads there too, and the crash waits until it has.
Run by tests/test_never_destroy.py and tests/test_object_storage.py.

    mmengine_crash.py WORK_DIR CRASH_AT [OUT_DIR]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import mmengine_pose  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

work, crash_at = sys.argv[1], int(sys.argv[2])
hook = dict(grad_norm_interval=2, scalar_interval=1)
if len(sys.argv) > 3:
    hook.update(out_dir=sys.argv[3], upload_interval=0.3)
runner = mmengine_pose.build_runner(work, steps=16, hook=hook, resume=crash_at == 0)


class HardCrash(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == crash_at:
            unitb_hook = next(h for h in runner.hooks if type(h).__name__ == "EnhancedTensorBoardHook")
            unitb_hook.recorder.run.flush()
            runner.visualizer.get_backend("TensorboardVisBackend").experiment.flush()
            deadline = time.monotonic() + 30
            while unitb_hook.folder.mirrors and unitb_hook.folder.mirrors[-1].pending() and time.monotonic() < deadline:
                unitb_hook.folder.mirrors[-1].request_sync()  # the store holds what was written
                time.sleep(0.2)
            os._exit(3)


if crash_at:
    runner.register_hook(HardCrash(), priority="LOWEST")
runner.train()
