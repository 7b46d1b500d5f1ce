"""Orphan clean-up after a crash: every reader sees each step once; crashes mid-clean-up."""
import json
import os

import pytest

from unitb import reader
from unitb.folder import set_aside


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
    cleanup = set_aside.truncate_run(str(tmp_path), 5)
    assert (cleanup.dropped, cleanup.first, cleanup.last) == (4, 6, 9)
    assert _loss(tmp_path) == [(s, float(s)) for s in range(1, 6)]
    _write(tmp_path, range(6, 9), lambda s: 100.0 + s)  # the resumed run
    assert _loss(tmp_path) == [(s, float(s)) for s in range(1, 6)] + [(s, 100.0 + s) for s in range(6, 9)]
    assert not [n for n in os.listdir(tmp_path) if "unitb-compact" in n or n == set_aside.JOURNAL]


def test_nothing_to_drop_leaves_files_untouched(tmp_path):
    _write(tmp_path, range(1, 4), float)
    before = sorted(os.listdir(tmp_path))
    assert set_aside.truncate_run(str(tmp_path), 3) is None
    assert sorted(os.listdir(tmp_path)) == before


def test_crash_before_the_swap_keeps_the_old_files(tmp_path):
    _write(tmp_path, range(1, 10), float)
    old = reader.event_files(str(tmp_path))
    (tmp_path / set_aside.TMP_NAME).write_bytes(b"partial")
    (tmp_path / set_aside.JOURNAL).write_text(json.dumps({"old": [os.path.basename(p) for p in old]}))
    assert len(_loss(tmp_path)) == 9  # readable meanwhile
    set_aside.recover(str(tmp_path))
    assert reader.event_files(str(tmp_path)) == old and len(_loss(tmp_path)) == 9
    assert set_aside.truncate_run(str(tmp_path), 4).dropped == 5
    assert [s for s, _ in _loss(tmp_path)] == [1, 2, 3, 4]


def _journal_for(tmp_path, old, resume_step):
    """The journal truncate_run writes before it renames anything."""
    trash = os.path.join(str(tmp_path), set_aside.TRASH, f"x-resume-{resume_step}")
    final = os.path.join(str(tmp_path), set_aside._compacted_name(old[0], resume_step))
    moves = [[p, os.path.join(trash, set_aside.removed_name(os.path.basename(p)))] for p in old]
    manifest = {"resume_step": resume_step, "dropped": 5, "dropped_steps": [5, 9], "written": final, "files": moves}
    (tmp_path / set_aside.JOURNAL).write_text(json.dumps({"tmp": str(tmp_path / set_aside.TMP_NAME), "final": final,
                                                       "trash": trash, "manifest": manifest}))
    return final, trash


def test_crash_after_the_swap_is_finished_on_next_start(tmp_path):
    _write(tmp_path, range(1, 10), float)
    old = reader.event_files(str(tmp_path))
    final, trash = _journal_for(tmp_path, old, 4)
    # Simulate: compacted file in place, journal written, old files not yet moved.
    with open(old[0], "rb") as src, open(final, "wb") as dst:
        dst.write(src.read())
    assert len(reader.read_run(str(tmp_path))) > 0  # still a readable run
    set_aside.recover(str(tmp_path))
    assert reader.event_files(str(tmp_path)) == [final]
    assert not (tmp_path / set_aside.JOURNAL).exists()
    assert sorted(os.listdir(trash)) == sorted([set_aside.MANIFEST] + [set_aside.removed_name(os.path.basename(p))
                                                                    for p in old])


def test_orphans_are_kept_outside_what_tensorboard_reads_and_can_be_restored(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    _write(tmp_path, range(1, 10), lambda s: float(s))
    cleanup = set_aside.truncate_run(str(tmp_path), 5)
    assert os.path.dirname(cleanup.trash) == str(tmp_path / set_aside.TRASH)
    assert not [n for n in os.listdir(cleanup.trash) if "tfevents" in n]
    acc = event_accumulator.EventAccumulator(str(tmp_path))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4, 5]
    assert set_aside.removals(str(tmp_path)) == [cleanup.trash]
    restored = set_aside.restore(cleanup.trash)
    assert len(restored) == 1
    assert _loss(tmp_path) == [(s, float(s)) for s in range(1, 10)]
    assert set_aside.removals(str(tmp_path)) == []


def test_a_fresh_start_is_never_a_truncation(tmp_path):
    _write(tmp_path, range(0, 5), float)
    for bad in (0, -1, True):
        with pytest.raises(ValueError):
            set_aside.truncate_run(str(tmp_path), bad)
    assert [s for s, _ in _loss(tmp_path)] == [0, 1, 2, 3, 4]


def test_carry_history_into_a_new_folder(tmp_path):
    old_dir, new_dir = tmp_path / "20260101_000000" / "vis_data", tmp_path / "20260101_000100" / "vis_data"
    old_dir.mkdir(parents=True)
    new_dir.mkdir(parents=True)
    _write(old_dir, range(1, 10), float)
    cleanup = set_aside.carry_history(str(old_dir), str(new_dir), 6)
    assert (cleanup.dropped, cleanup.first, cleanup.last) == (3, 7, 9)
    assert reader.event_files(str(old_dir)) == []
    assert [s for s, _ in _loss(new_dir)] == [1, 2, 3, 4, 5, 6]
    set_aside.restore(cleanup.trash)
    assert [s for s, _ in _loss(old_dir)] == list(range(1, 10)) and _loss(new_dir) == []


KILL_DURING_CLEANUP = """
import os, sys
from unitb.folder import set_aside
run_dir, point = sys.argv[1], sys.argv[2]
real_replace, real_write = os.replace, set_aside._write_json
calls = {"replace": 0}

def replace(src, dst):
    calls["replace"] += 1
    if point == "before-swap" and src.endswith(set_aside.TMP_NAME):
        os._exit(9)
    real_replace(src, dst)
    if point == "after-swap" and dst.endswith(tuple("0123456789")) and "unitb-resumed" in dst:
        os._exit(9)
    if point == "mid-move" and set_aside.TRASH in dst:
        os._exit(9)

def write_json(path, data):
    if point == "before-journal" and path.endswith(set_aside.JOURNAL):
        os._exit(9)
    real_write(path, data)

os.replace, set_aside._write_json = replace, write_json
set_aside.truncate_run(run_dir, 4)
"""


@pytest.mark.parametrize("point", ["before-journal", "before-swap", "after-swap", "mid-move"])
def test_a_kill_at_any_point_of_the_clean_up_loses_nothing(tmp_path, point):
    import subprocess
    import sys

    _write(tmp_path, range(1, 6), lambda s: float(s))
    _write(tmp_path, range(6, 10), lambda s: float(s))  # a second file, so the move has two steps
    before = _loss(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_CLEANUP, str(tmp_path), point])
    assert killed.returncode == 9
    steps = [s for s, _ in _loss(tmp_path)]
    assert set(range(1, 5)) <= set(steps)  # every step up to the resume point stays readable meanwhile
    cleanup = set_aside.truncate_run(str(tmp_path), 4)  # the next start: finish or roll back, then clean
    assert _loss(tmp_path) == [(s, float(s)) for s in range(1, 5)]
    assert not (tmp_path / set_aside.JOURNAL).exists() and not (tmp_path / set_aside.TMP_NAME).exists()
    kept = {}
    for trash in set_aside.removals(str(tmp_path)):
        for name in os.listdir(trash):
            if name != set_aside.MANIFEST:
                kept.update(_loss_of_file(os.path.join(trash, name)))
    assert kept == dict(before)  # the moved originals still hold every step
    assert cleanup is None or (cleanup.dropped, cleanup.first, cleanup.last) == (5, 5, 9)


def _loss_of_file(path):
    from tensorboard.compat.proto import event_pb2  # noqa: F401

    return {e.step: e.summary.value[0].simple_value for e in reader.iter_events(path) if e.HasField("summary")}
