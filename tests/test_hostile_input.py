"""Names from outside never reach outside the folder they are meant for: store keys (pull, the
fetch of a resume, the mmengine hook's fetch), journals and manifests left in a run folder,
tags and layer names. Hostile keys are put into a real moto S3 server with boto3."""
from __future__ import annotations

import json
import os
import warnings

import boto3
import pytest

from unitb import UnitbWarning
from unitb import reader
from unitb.folder import set_aside
from unitb.files import safe_paths
from unitb.commands.cli import main as cli_main
from unitb.store.mirror import Mirror
from unitb.store.run_location import newest_earlier_folder

HOSTILE = ["../../escaped-dotdot", "sub/../../../escaped-nested", "/abs/escaped-absolute", "a\\..\\escaped-backslash",
           "./escaped-dot", "empty//escaped-empty", "..", "link/escaped-through-link"]


def _event_bytes(tmp_path, steps=3) -> bytes:
    """A real event file's bytes (train/loss at steps 1..steps)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    import tempfile

    folder = tempfile.mkdtemp(dir=tmp_path, prefix="maker-")
    writer = EventFileWriter(folder)
    for step in range(1, steps + 1):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=float(step))])
        writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
    writer.close()
    (path,) = reader.event_files(folder)
    return open(path, "rb").read()


def _put(moto_store, bucket_url: str, prefix: str, keys, body=b"owned") -> None:
    client = boto3.client("s3", endpoint_url=moto_store.endpoint, region_name="us-east-1")
    bucket = bucket_url[len("s3://"):]
    for key in keys:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=body)


def _files_below(root) -> set:
    return {os.path.relpath(os.path.join(d, n), root) for d, _dirs, names in os.walk(root) for n in names}


@pytest.fixture
def hostile_store(s3_env, moto_store, tmp_path):
    """``s3://bucket/runs/exp`` with one real event file and every hostile key."""
    _put(moto_store, s3_env, "runs/exp", ["events.out.tfevents.1.host.1"], _event_bytes(tmp_path))
    _put(moto_store, s3_env, "runs/exp", HOSTILE)
    return s3_env + "/runs/exp"


def test_store_keys_are_checked_one_rule():
    for key in HOSTILE[:-1]:
        assert safe_paths.unsafe_reason(key), key
    for key in ("events.out.tfevents.1.h", "a/b/c.json", ".unitb-removed/x/manifest.json", "name..with..dots"):
        assert safe_paths.unsafe_reason(key) is None, key
    assert not safe_paths.plain_name("a/b") and not safe_paths.plain_name("..") and safe_paths.plain_name("vis_data")


def test_unitb_pull_skips_hostile_keys_and_names_them(hostile_store, tmp_path, capsys):
    box = tmp_path / "box"  # nothing may appear in box outside box/deep/er/dest
    dest = box / "deep" / "er" / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    dest.mkdir(parents=True)
    os.symlink(outside, dest / "link")  # a link already in the destination, pointing elsewhere
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli_main(["pull", hostile_store, str(dest)]) == 0
    messages = [str(w.message) for w in caught if issubclass(w.category, UnitbWarning)]
    assert len(messages) == 1  # one warning for the whole pull, naming the objects
    for key in HOSTILE:
        assert repr(key) in messages[0] or repr(key.replace("\\", "\\\\")) in messages[0], key
    assert "fetched 1 file(s)" in capsys.readouterr().out
    assert _files_below(box) == {os.path.join("deep", "er", "dest", "events.out.tfevents.1.host.1")}
    assert os.listdir(outside) == [] and not (tmp_path / "escaped-dotdot").exists()
    assert [s for s, _ in reader.scalars(str(dest))["train/loss"]] == [1, 2, 3]  # the rest pulled as before


def test_a_resume_fetch_from_the_store_skips_hostile_keys(hostile_store, tmp_path):
    spool = tmp_path / "box" / "a" / "b" / "spool"
    messages = []
    mirror = Mirror(str(spool), hostile_store, warn=messages.append)
    assert mirror.pull() == 2  # the event file, and link/… (no link in this folder: a plain sub-folder)
    assert len(messages) == 1 and "skipped 7 object(s)" in messages[0] and "'../../escaped-dotdot'" in messages[0]
    spool_files = {os.path.join("a", "b", "spool", name) for name in
                   ("events.out.tfevents.1.host.1", ".unitb-mirror.json", os.path.join("link", "escaped-through-link"))}
    assert _files_below(tmp_path / "box") == spool_files


def test_the_hooks_fetch_never_takes_a_dotdot_prefix_for_a_timestamp(s3_env, moto_store, tmp_path):
    # out_dir/work/../vis_data/... lists as a folder named '..' below out_dir/work, which sorts
    # before every timestamp: it must never be taken for the interrupted run's folder.
    _put(moto_store, s3_env, "out/work", ["../vis_data/events.out.tfevents.1.h.1"], _event_bytes(tmp_path))
    assert newest_earlier_folder(s3_env + "/out/work", "20260101_000000", "vis_data") is None
    _put(moto_store, s3_env, "out/work", ["20250101_000000/vis_data/events.out.tfevents.1.h.1"],
         _event_bytes(tmp_path))
    assert newest_earlier_folder(s3_env + "/out/work", "20260101_000000", "vis_data") == "20250101_000000"


def _run_with_trash(tmp_path):
    """A run folder at box/a/b/run whose resume set steps 4..6 aside (a real truncate_run)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folder = tmp_path / "box" / "a" / "b" / "run"
    writer = EventFileWriter(str(folder))
    for step in range(1, 7):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=float(step))])
        writer.add_event(event_pb2.Event(step=step, wall_time=1.0 + step, summary=summary))
    writer.close()
    cleanup = set_aside.truncate_run(str(folder), 3)
    return folder, cleanup.trash


def test_a_manifest_naming_paths_elsewhere_restores_only_into_its_own_run(tmp_path):
    folder, trash = _run_with_trash(tmp_path)
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    victim = victim_dir / "events.out.tfevents.1.unitb-resumed-3"
    victim.write_bytes(b"the user's file")
    manifest_path = os.path.join(trash, set_aside.MANIFEST)
    manifest = json.load(open(manifest_path))
    # A manifest pulled from a shared store (or edited): sources elsewhere, the written file elsewhere.
    manifest["files"] = [[str(victim_dir / "events.out.tfevents.9.elsewhere"), name] for _src, name in manifest["files"]]
    manifest["written"] = str(victim)
    json.dump(manifest, open(manifest_path, "w"))
    restored = set_aside.restore(trash)
    assert restored == [str(folder / "events.out.tfevents.9.elsewhere")]  # back into its own run only
    assert victim.read_bytes() == b"the user's file" and sorted(os.listdir(victim_dir)) == [victim.name]
    # ...and a manifest naming something that is no event file is refused whole.
    _other, trash2 = _run_with_trash(tmp_path / "second")
    manifest_path = os.path.join(trash2, set_aside.MANIFEST)
    manifest = json.load(open(manifest_path))
    manifest["files"] = [["../../.bashrc", name] for _src, name in manifest["files"]]
    json.dump(manifest, open(manifest_path, "w"))
    with pytest.raises(safe_paths.UnsafePath):
        set_aside.restore(trash2)
    assert os.path.exists(manifest_path)  # nothing moved, still listed


def test_unitb_restore_reports_a_refused_manifest_and_goes_on(tmp_path, capsys):
    _folder, trash = _run_with_trash(tmp_path)
    manifest_path = os.path.join(trash, set_aside.MANIFEST)
    manifest = json.load(open(manifest_path))
    manifest["files"] = [["/etc/passwd", name] for _src, name in manifest["files"]]
    json.dump(manifest, open(manifest_path, "w"))
    assert cli_main(["restore", str(tmp_path / "box")]) == 1
    assert "refused" in capsys.readouterr().err
    assert os.path.exists("/etc/passwd")


def test_a_journal_naming_paths_elsewhere_is_set_aside_not_followed(tmp_path):
    folder, _trash = _run_with_trash(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    kept = sorted(os.listdir(folder))
    journal = {"tmp": str(victim), "final": str(victim), "trash": str(tmp_path),
               "manifest": {"files": [[str(victim), "x"]], "resume_step": 3}}
    (folder / set_aside.JOURNAL).write_text(json.dumps(journal))
    messages = []
    set_aside.recover(str(folder), warn=messages.append)
    assert victim.read_text() == "keep me"
    assert len(messages) == 1 and "ignored the interrupted clean-up journal" in messages[0]
    assert sorted(os.listdir(folder)) == sorted(kept + [set_aside.JOURNAL + ".refused"])
    assert [s for s, _ in reader.scalars(str(folder))["train/loss"]] == [1, 2, 3]


def test_a_hostile_tag_or_layer_name_never_becomes_a_path(tmp_path):
    import torch

    from torch_adapter import TorchLogger

    box = tmp_path / "box"
    model = torch.nn.Sequential()
    model.add_module("evil", torch.nn.Linear(2, 2))
    logger = TorchLogger(str(box / "run"), model, torch.optim.SGD(model.parameters(), 0.1), scalar_interval=1,
                         grad_norm_interval=1, log_speed=False)
    model(torch.ones(1, 2)).sum().backward()
    logger.optimizer.step()
    logger.log_step(1, loss=1.0, losses={"../../escaped": 2.0}, metrics={"/abs/escaped": 3.0, "..\\x": 4.0})
    logger.close()
    assert {os.path.dirname(p) for p in _files_below(box)} == {"run"}  # every file in the run folder itself
    tags = set(reader.scalars(str(box / "run")))
    assert not [t for t in tags if ".." in t.split("/") or t.startswith("/")]


def test_a_link_where_the_claim_goes_is_never_followed(tmp_path):
    import torch

    from torch_adapter import TorchLogger

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "runs" / "exp").mkdir(parents=True)
    os.symlink(victim, tmp_path / "runs" / "exp" / ".unitb-claim")
    model = torch.nn.Linear(2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitbWarning)
        log = TorchLogger(str(tmp_path / "runs" / "exp"), model, None, log_grad_norm=False, log_speed=False)
    log.log_step(1, loss=1.0)
    log.close()
    assert victim.read_text() == "keep me"
    assert log.run_dir == str(tmp_path / "runs" / "exp-2")
