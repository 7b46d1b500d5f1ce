"""The step index lets a resume with nothing to set aside skip reading the run, and never lets
it miss a record: bytes written after the last index update, a replaced file and a file without
an entry are read as before."""
import os

import pytest
import torch
from torch.utils.tensorboard import SummaryWriter

import unitb
from unitb import reader
from unitb.read import records as records_io
from unitb.folder import set_aside
from unitb.folder import step_index


def _run(logdir, steps):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    logger = unitb.TorchLogger(logdir, model, opt, scalar_interval=1, grad_norm_interval=1)
    for step in range(1, steps + 1):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        logger.log_step(step, loss=loss)
    logger.close()
    return logger.run_dir


@pytest.fixture
def reads(monkeypatch):
    """How many event files the resume read whole (records_io.split_at_step)."""
    calls = []
    original = records_io.split_at_step

    def counting(path, step):
        calls.append(path)
        return original(path, step)
    monkeypatch.setattr(set_aside, "split_at_step", counting)
    return calls


def test_a_resume_at_the_last_step_reads_nothing_whole(tmp_path, reads):
    run_dir = _run(str(tmp_path / "run"), 12)
    assert os.path.exists(os.path.join(run_dir, step_index.INDEX))
    assert set_aside.truncate_run(run_dir, 12) is None and reads == []
    assert set_aside.truncate_run(run_dir, 8) is not None and len(reads) == 1  # orphans: the whole path, as before
    assert [s for s, _ in reader.scalars(run_dir)["train/loss"]] == list(range(1, 9))


def test_records_after_the_last_index_update_are_still_found(tmp_path, reads):
    run_dir = _run(str(tmp_path / "run"), 6)
    (path,) = reader.event_files(run_dir)
    writer = SummaryWriter(run_dir, filename_suffix=".late")  # a crash after more steps were written
    for step in (7, 8):
        writer.add_scalar("train/loss", 0.5, step)
    writer.close()
    assert set_aside.truncate_run(run_dir, 6) is not None  # the new file has no entry: read whole
    assert [s for s, _ in reader.scalars(run_dir)["train/loss"]] == list(range(1, 7))

    run_dir = _run(str(tmp_path / "again"), 6)
    (path,) = reader.event_files(run_dir)
    with open(path, "ab") as handle, open(_late_records(tmp_path), "rb") as late:
        handle.write(late.read())  # appended to an indexed file after its last update
    assert step_index.highest_step(path) == 9
    assert set_aside.truncate_run(run_dir, 6) is not None
    assert [s for s, _ in reader.scalars(run_dir)["train/loss"]] == list(range(1, 7))


def _late_records(tmp_path):
    """The records of steps 8 and 9 alone (no file-version header), as raw bytes."""
    folder = tmp_path / "late"
    writer = SummaryWriter(str(folder))
    for step in (8, 9):
        writer.add_scalar("train/loss", 0.5, step)
    writer.close()
    (path,) = reader.event_files(str(folder))
    with open(path, "rb") as handle:
        data = handle.read()
    out = str(tmp_path / "late.bin")
    with open(out, "wb") as handle:
        handle.write(data[_end_of_first_record(data):])
    return out


def _end_of_first_record(data: bytes) -> int:
    import struct

    (length,) = struct.unpack_from("<Q", data, 0)
    return 12 + length + 4


def test_a_replaced_file_is_not_vouched_for(tmp_path):
    run_dir = _run(str(tmp_path / "run"), 4)
    other = _run(str(tmp_path / "other"), 9)
    (path,) = reader.event_files(run_dir)
    (theirs,) = reader.event_files(other)
    data = open(theirs, "rb").read()
    os.remove(path)
    with open(path, "wb") as handle:  # same name, other content (the file system may reuse the inode)
        handle.write(data)
    assert step_index.highest_step(path) is None
