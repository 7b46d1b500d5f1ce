"""Orphan clean-up after a crash: every reader sees each step once; crashes mid-clean-up."""
import json
import os

import pytest

from unitb import reader, resume


def _write(path, steps, value):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.compat.proto import event_pb2, summary_pb2

    writer = EventFileWriter(str(path))
    for step in steps:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=value(step))])
        writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
    writer.close()


def _loss(path):
    return [(s, v) for s, v in reader.scalars(str(path)).get("train/loss", [])]


def test_truncate_drops_only_steps_after_the_checkpoint(tmp_path):
    _write(tmp_path, range(1, 10), lambda s: float(s))
    assert resume.truncate_run(str(tmp_path), 5) == 4
    assert _loss(tmp_path) == [(s, float(s)) for s in range(1, 6)]
    _write(tmp_path, range(6, 9), lambda s: 100.0 + s)  # the resumed run
    assert _loss(tmp_path) == [(s, float(s)) for s in range(1, 6)] + [(s, 100.0 + s) for s in range(6, 9)]
    assert not [n for n in os.listdir(tmp_path) if "unitb-compact" in n or n == resume.JOURNAL]


def test_nothing_to_drop_leaves_files_untouched(tmp_path):
    _write(tmp_path, range(1, 4), float)
    before = sorted(os.listdir(tmp_path))
    assert resume.truncate_run(str(tmp_path), 3) == 0
    assert sorted(os.listdir(tmp_path)) == before


def test_crash_before_the_swap_keeps_the_old_files(tmp_path):
    _write(tmp_path, range(1, 10), float)
    old = reader.event_files(str(tmp_path))
    (tmp_path / resume.TMP_NAME).write_bytes(b"partial")
    (tmp_path / resume.JOURNAL).write_text(json.dumps({"old": [os.path.basename(p) for p in old]}))
    assert len(_loss(tmp_path)) == 9  # readable meanwhile
    resume.recover(str(tmp_path))
    assert reader.event_files(str(tmp_path)) == old and len(_loss(tmp_path)) == 9
    assert resume.truncate_run(str(tmp_path), 4) == 5
    assert [s for s, _ in _loss(tmp_path)] == [1, 2, 3, 4]


def test_crash_after_the_swap_is_finished_on_next_start(tmp_path):
    _write(tmp_path, range(1, 10), float)
    old = reader.event_files(str(tmp_path))
    # Simulate: compacted file in place, journal written, old files not yet removed.
    compacted = os.path.join(str(tmp_path), resume._compacted_name(old[0], 4))
    with open(old[0], "rb") as src, open(compacted, "wb") as dst:
        dst.write(src.read())
    (tmp_path / resume.JOURNAL).write_text(json.dumps({"old": [os.path.basename(p) for p in old]}))
    assert len(reader.read_run(str(tmp_path))) > 0  # still a readable run
    resume.recover(str(tmp_path))
    assert reader.event_files(str(tmp_path)) == [compacted]
    assert not (tmp_path / resume.JOURNAL).exists()


def test_restart_from_scratch_drops_everything(tmp_path):
    _write(tmp_path, range(0, 5), float)
    resume.truncate_run(str(tmp_path), -1)
    assert _loss(tmp_path) == []
    with pytest.raises(ValueError):
        resume.truncate_run(str(tmp_path), -2)
