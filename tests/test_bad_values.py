"""A bad value is that value's problem: one warning, the record skipped, and the writer left
alone (it used to be taken for a broken writer and reopened, losing a record written at that
moment). A writer that really is reopened loses nothing queued. A giant image is thinned before
it is copied. Real writers of both frameworks, event files read back."""
from __future__ import annotations

import os
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import unitb
from unitb import reader
from unitb.write import render


def _logger(kind, logdir):
    options = dict(log_speed=False, log_model_stats=False)
    if kind == "torch":
        logger = unitb.TorchLogger(logdir, **options)
        return logger, logger.recorder.run
    logger = unitb.TFLogger(logdir, start_step=0, **options)
    return logger, logger.run


def _event_files(folder):
    return [n for n in os.listdir(folder) if "tfevents" in n]


@pytest.mark.parametrize("kind", ["torch", "tf"])
def test_a_bad_value_is_skipped_with_one_warning_and_never_reopens_the_writer(tmp_path, kind):
    logdir = str(tmp_path / "run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger, _run = _logger(kind, logdir)
        for i in range(1, 301):
            logger.log_text("note/t", f"text {i}", step=i)
            if i == 100:  # a tag too long to be a folder name: the file system refuses it
                logger.log_embedding("x" * 2000, np.random.default_rng(0).normal(size=(8, 4)), step=i)
        logger.close()
    said = [str(w.message) for w in caught if "unitb" in str(w.message)]
    assert len([m for m in said if "could not write embedding" in m]) == 1, said
    assert "that record is skipped" in said[0] and len(said[0]) < 600  # the 2,000-character name is cut
    assert not any("works again" in m or "attempted again" in m for m in said), said
    texts = [r.step for r in reader.read_run(logdir) if r.tag == "note/t"]
    assert texts == list(range(1, 301))
    assert len(_event_files(logdir)) == 1  # the writer was never reopened


@pytest.mark.parametrize("kind", ["torch", "tf"])
def test_a_writer_reopened_under_running_writes_loses_no_record(tmp_path, kind):
    logdir = str(tmp_path / "run")
    logger, run = _logger(kind, logdir)
    stop = threading.Event()
    reopened = []

    def reopen_again_and_again():  # what the writer thread does after a real write failure
        while not stop.is_set():
            run._repair(force=True)
            reopened.append(1)
            time.sleep(0.002)

    thread = threading.Thread(target=reopen_again_and_again)
    thread.start()
    try:
        for i in range(1, 3001):
            logger.log_scalar("mine/x", float(i), step=i)
            if i % 10 == 0:
                logger.log_text("note/t", f"text {i}", step=i)
    finally:
        stop.set()
        thread.join()
    logger.close()
    assert len(reopened) > 20
    assert reader.scalars(logdir)["mine/x"] == [(i, float(i)) for i in range(1, 3001)]
    assert [r.step for r in reader.read_run(logdir) if r.tag == "note/t"] == list(range(10, 3001, 10))


def test_a_giant_image_is_thinned_before_it_is_copied(tmp_path):
    logdir = str(tmp_path / "run")
    logger, _run = _logger("torch", logdir)
    image = np.zeros((10000, 10000, 3), np.uint8)  # 300 MB
    image[::2, ::2] = 200
    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            began = time.monotonic()
            for step in (1, 2):
                logger.log_image("big/picture", image, step=step, keypoints=np.array([[5000.0, 2500.0]]))
            logger.flush()
            took = time.monotonic() - began
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    logger.close()
    said = [str(w.message) for w in caught if "big/picture" in str(w.message)]
    assert len(said) == 1 and f"over {render.MAX_IMAGE_SIDE} pixels" in said[0] and "1/5" in said[0], said
    assert peak < 250 * 2**20  # a full copy alone would be 300 MB, its drawing several times that
    assert took < 60
    (first, second) = [r for r in reader.read_run(logdir) if r.tag == "big/picture"]
    picture = reader.decode_png(first.value)
    assert max(picture.shape[:2]) <= render.MAX_IMAGE_SIDE
    assert picture.shape[:2] == (2004, 2004)  # 2000 x 2000 in the grid's 2-pixel frame
    # The keypoint is drawn where it lies in the thinned picture (x 5000 -> 1000, y 2500 -> 500).
    red = np.argwhere((picture[..., 0] > 200) & (picture[..., 1] < 80) & (picture[..., 2] < 80))
    assert len(red) and np.abs(red.mean(axis=0) - [502, 1002]).max() < 15
