"""Filesystem faults with real writers: folder deleted mid-run, a real full disk."""
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch

import unitb
from torch_adapter import TorchLogger
from unitb import UnitbWarning
from unitb import reader


def _steps(run_dir, tag="train/loss"):
    return [r.step for r in reader.read_run(str(run_dir)) if r.tag == tag]


def _torch_logger(logdir, **kwargs):
    model = torch.nn.Linear(2, 1)
    return TorchLogger(str(logdir), model=model, scalar_interval=1, **kwargs)


def _tf_logger(logdir, **kwargs):
    return unitb.TFLogger(str(logdir), scalar_interval=1, **kwargs)


IMAGES = np.random.default_rng(0).integers(0, 255, (4, 96, 96, 3)).astype(np.uint8)


def _log(logger, step, image=False):
    if isinstance(logger, TorchLogger):
        logger.log_step(step, loss=1.0)
        if image:
            logger.log_images("train", step, IMAGES)
    else:
        logger.log_train_step(step, losses={"total": 1.0})
        if image:
            logger.log_images(step, IMAGES)


@pytest.mark.parametrize("make", [_torch_logger, _tf_logger], ids=["torch", "tf"])
def test_run_folder_deleted_mid_run(tmp_path, make):
    logdir = tmp_path / "run"
    logger = make(logdir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 6):
            _log(logger, step)
        logger.flush()
        shutil.rmtree(logdir)
        for step in range(6, 11):
            _log(logger, step)
        logger.flush()  # notices the folder is gone (one warning)
        assert not logdir.exists()  # unitb does not recreate it behind the user's back
        logdir.mkdir()  # the path comes back
        logger.flush()  # ... and logging continues in a new event file
        for step in range(11, 16):
            _log(logger, step)
        logger.close()
    gone = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning) and "disappeared" in str(w.message)]
    assert len(gone) == 1
    assert _steps(logdir)[-5:] == [11, 12, 13, 14, 15]


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)  # lazy: a writer may still hold a file


@pytest.mark.parametrize("make", [_torch_logger, _tf_logger], ids=["torch", "tf"])
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")  # no raw writer-thread traceback
def test_full_disk_warns_once_keeps_training_and_resumes_when_space_returns(tiny_disk, make):
    logdir = tiny_disk / "run"
    logger = make(logdir, train_image_interval=1)
    logger.run.REPAIR_EVERY_SECS = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 6):
            _log(logger, step)
        logger.flush()
        filler = tiny_disk / "filler"
        with open(filler, "wb", buffering=0) as handle:  # fill the disk to the last byte
            try:
                while True:
                    handle.write(bytes(4096))
            except OSError:
                pass
        for step in range(6, 41):  # training goes on while every write fails
            _log(logger, step, image=True)
            logger.flush()
        os.remove(filler)  # space comes back
        for step in range(41, 46):
            _log(logger, step)
            logger.flush()
        logger.close()
    messages = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning)]
    full = [m for m in messages if "No space left" in m]
    assert 1 <= len(full) <= 4, (messages, _steps(logdir))  # one per kind of failure (write / flush), not one per record
    assert len([m for m in messages if "works again" in m]) == 1
    steps = _steps(logdir)
    assert steps[:5] == [1, 2, 3, 4, 5]  # what was written before is intact
    assert steps[-5:] == [41, 42, 43, 44, 45]  # logging resumed


def test_read_only_folder_mid_run_warns_once_and_resumes(tmp_path):
    """Root ignores permissions and a tmpfs with an open writer cannot be remounted read-only,
    so EROFS is injected at the writer: every write fails until the folder is writable again."""
    import errno

    logger = _torch_logger(tmp_path / "run")
    logger.run.REPAIR_EVERY_SECS = 0.0
    writer = logger.run.sink.writer
    real_add_scalar = writer.add_scalar
    state = {"read_only": False}

    def add_scalar(*args, **kwargs):
        if state["read_only"]:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_add_scalar(*args, **kwargs)
    writer.add_scalar = add_scalar
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 6):
            _log(logger, step)
        state["read_only"] = True
        for step in range(6, 16):
            _log(logger, step)
            logger.flush()
        state["read_only"] = False
        for step in range(16, 21):
            _log(logger, step)
        logger.close()
    messages = [str(w.message) for w in caught if "Read-only file system" in str(w.message)]
    assert len(messages) == 1
    steps = _steps(tmp_path / "run")
    assert steps[:5] == [1, 2, 3, 4, 5] and steps[-5:] == [16, 17, 18, 19, 20]
