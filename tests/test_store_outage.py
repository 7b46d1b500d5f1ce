"""The store goes away mid-run: training does not wait, one warning says uploads are behind,
and once the store answers again every event reaches it, once. Each test has its own moto
server, killed and started again (a restarted moto is empty: the mirror notices the store
lost its objects and sends them again)."""
from __future__ import annotations

import time
import warnings

import pytest
import torch

from s3_store import MotoStore
from unitb import UnitbWarning
from unitb import reader
from unitb.files import storage
from unitb.commands.cli import main as cli_main


@pytest.fixture
def own_store(monkeypatch, tmp_path):
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps file systems by arguments, not by endpoint
    store = MotoStore().start()
    for key, value in store.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("UNITB_SPOOL", str(tmp_path / "spool"))
    store.make_bucket("outage")
    yield store
    store.stop()


def _restart(store: MotoStore) -> None:
    store.start()
    store.make_bucket("outage")  # moto keeps nothing across a restart; the bucket comes back empty


def _logger(url, **kwargs):
    from torch_adapter import TorchLogger

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    return TorchLogger(url, model, torch.optim.SGD(model.parameters(), 0.1), **kwargs)


def _step(log, step):
    loss = log.model(torch.randn(8, 4)).pow(2).mean()
    log.optimizer.zero_grad()
    loss.backward()
    log.optimizer.step()
    started = time.perf_counter()
    log.log_step(step, loss=loss, epoch=step / 10)
    return time.perf_counter() - started


def _wait_uploaded(mirror, seconds=30.0):
    deadline = time.monotonic() + seconds
    while mirror.pending() and time.monotonic() < deadline:
        mirror.request_sync()
        time.sleep(0.2)
    return not mirror.pending()


def _behind(caught):
    return [w for w in caught if issubclass(w.category, UnitbWarning) and "are behind" in str(w.message)]


def test_outage_mid_run_nothing_lost_nothing_twice(own_store, capsys):
    url = "s3://outage/runs/exp"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = _logger(url, scalar_interval=1, upload_interval=0.3)
        mirror = log.run.folder.mirror
        for step in range(1, 41):
            _step(log, step)
        log.flush()
        assert _wait_uploaded(mirror)
        own_store.stop()  # the store goes away
        during, step = [], 40
        # Train on while uploads fail behind the loop (a failed request takes ~5 s), until the
        # warning has come and a few more failed attempts have passed.
        deadline = time.monotonic() + 60
        while (not _behind(caught) or step < 200) and time.monotonic() < deadline:
            step += 1
            during.append(_step(log, step))
            time.sleep(0.02)  # the rest of a training step
        last_down = step
        _restart(own_store)
        for step in range(last_down + 1, last_down + 41):
            _step(log, step)
        log.flush()
        assert _wait_uploaded(mirror)
        log.close()
    assert len(_behind(caught)) == 1, [str(w.message) for w in caught]  # one warning for the outage
    assert max(during) < 0.25, max(during)  # no step waited on the network
    assert f"uploads to {url} caught up" in capsys.readouterr().err
    steps = [s for s, _ in reader.scalars(url)["train/loss"]]
    assert steps == list(range(1, last_down + 41))  # every step, once, read from the store
    assert reader.scalars(url) == reader.scalars(storage.spool_path(url))


def test_store_still_away_at_the_end_then_unitb_push(own_store):
    url = "s3://outage/runs/late"
    log = _logger(url, scalar_interval=1, upload_interval=0.3, upload_timeout=2)
    for step in range(1, 11):
        _step(log, step)
    own_store.stop()
    for step in range(11, 21):
        _step(log, step)
    started = time.monotonic()
    with pytest.warns(UnitbWarning, match=r"does not hold \d+ file\(s\) of this run whole at s3://outage/runs/late "
                                          r"\(.*tfevents.*\).*`unitb push "):
        log.close()
    assert time.monotonic() - started < 2 + 2  # bounded by upload_timeout, whatever the requests do
    _restart(own_store)
    spool = storage.spool_path(url)
    assert cli_main(["push", spool, url]) == 0
    assert [s for s, _ in reader.scalars(url)["train/loss"]] == list(range(1, 21))


def test_spool_bound_pauses_histograms_not_scalars(own_store):
    url = "s3://outage/runs/bounded"
    log = _logger(url, scalar_interval=1, upload_interval=0.3, max_spool_mb=0.001)  # ~1 KB of backlog
    for step in range(1, 11):
        _step(log, step)
    log.flush()
    assert _wait_uploaded(log.run.folder.mirror)  # no backlog yet: the histograms of step 10 are written
    log.log_epoch(10, 1)
    log.flush()
    assert _wait_uploaded(log.run.folder.mirror)
    own_store.stop()
    with pytest.warns(UnitbWarning, match=r"over max_spool_mb=0.001: images and histograms pause"):
        for step in range(11, 41):
            _step(log, step)
            if step % 10 == 0:
                log.flush()  # the scalars reach the spool's disk (the backlog is what is on disk)
                time.sleep(1.1)  # the backlog is measured at most once a second
                log.log_epoch(step, step // 10)
    _restart(own_store)
    log.close()
    scalars = reader.scalars(url)
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, 41))  # scalars went on
    histogram_steps = {r.step for r in reader.read_run(url) if r.kind == "histogram"}
    assert histogram_steps == {10}  # before the outage; paused while the backlog was over the bound


def _store_matches_spool(store, url):
    """Every local file of the run is in the store, byte for byte."""
    spool = storage.spool_path(url)
    fs = store.filesystem()
    from unitb.store.mirror import local_files
    import os

    for rel in local_files(spool):
        with open(os.path.join(spool, rel), "rb") as handle:
            assert fs.cat(f"{url[len('s3://'):]}/{rel}") == handle.read(), rel


@pytest.mark.parametrize("lie", ["cut", "same-size-damaged", "restarted-empty"])
def test_close_checks_the_stores_copy_and_sends_again_what_it_lost(own_store, capsys, lie):
    url = f"s3://outage/runs/{lie}"
    # Nothing is written at close (no last model statistics, no last sample of the machine): the
    # local files are those uploaded, so only the check of the store's copy can find the loss.
    log = _logger(url, scalar_interval=1, upload_interval=0.3, log_model_stats=False, system_interval=0)
    for step in range(1, 81):
        _step(log, step)
    log.flush()
    assert _wait_uploaded(log.run.folder.mirror)
    fs = own_store.filesystem()
    if lie == "cut":  # the store keeps half of the event file, silently
        (key,) = [k for k in own_store.objects(url) if "tfevents" in k]
        whole = fs.cat(f"outage/runs/{lie}/{key}")
        fs.pipe_file(f"outage/runs/{lie}/{key}", whole[: len(whole) // 2])
    elif lie == "same-size-damaged":  # as long as the file, other bytes: only the ETag (MD5) tells
        (key,) = [k for k in own_store.objects(url) if "tfevents" in k]
        whole = fs.cat(f"outage/runs/{lie}/{key}")
        fs.pipe_file(f"outage/runs/{lie}/{key}", whole[:40] + bytes(len(whole) - 40))
    else:  # restarted between two requests: no upload ever failed, the objects are gone
        own_store.stop()
        _restart(own_store)
    assert max((s for s, _ in reader.scalars(url).get("train/loss", [])), default=0) < 80
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log.close()
    assert not [w for w in caught if issubclass(w.category, UnitbWarning)], [str(w.message) for w in caught]
    assert "differed from this run's" in capsys.readouterr().err
    assert [s for s, _ in reader.scalars(url)["train/loss"]] == list(range(1, 81))
    _store_matches_spool(own_store, url)


def test_a_missing_bucket_is_one_clear_error_at_construction(own_store):
    import unitb
    from torch_adapter import EnhancedTensorBoardHook

    url = "s3://no-such-bucket/runs/exp"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for make in (lambda: _logger(url), lambda: unitb.TFLogger(url), lambda: unitb.TFCallback(url),
                     lambda: EnhancedTensorBoardHook(out_dir="s3://no-such-bucket/mmpose")):
            with pytest.raises(ValueError, match=r"the bucket 'no-such-bucket' of s3://no-such-bucket/\S+ does not "
                                                 r"exist in the store"):
                make()
    assert not [w for w in caught if issubclass(w.category, UnitbWarning)], [str(w.message) for w in caught]
