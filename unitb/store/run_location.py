"""Where a run is written: a local folder, or for a logdir that is a URL, a local spool and the
:class:`~unitb.store.mirror.Mirror` that uploads it, chosen by the same folder rules as a local run
(:mod:`unitb.folder.versions`) decided on what the store *and* the spool hold.

- Fresh run (step 0): ``s3://b/runs/exp`` when no version of it holds a run, else one past
  the newest (``exp-2``…), in the store or in this machine's spool.
- Resumed run (step S >= 1): the newest version; its files are pulled from the store into
  the spool first (a restart on a fresh machine has an empty spool), then the orphan rules
  run on the local copy and the mirror carries the result to the store: orphans go to
  ``.unitb-removed/`` there too, and the objects they replaced are deleted.

If the store does not answer at start, the run goes on from what the spool knows (one
warning); uploads start when the store answers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Set

from unitb.folder import claim
from unitb.files.event_files import event_files
from unitb.folder import versions
from unitb.files import safe_paths
from unitb.files import storage
from unitb.store.mirror import Mirror
from unitb.folder import set_aside


@dataclass
class RunLocation:
    """The folder a run writes into, as :func:`choose_run_location` chose it."""

    url: str  # where the run is: the folder or URL version chosen (``…/exp-2`` beside another run)
    local: str  # the folder the writers write into (a URL run's spool folder)
    mirror: Optional[Mirror]  # a URL run's uploader; None for a local folder


@dataclass
class StoreOptions:
    """How a URL run reaches its store; every adapter takes these keywords."""
    storage_options: Optional[Mapping[str, Any]] = None
    """(``TorchLogger``, ``TFCallback``, ``TFLogger``) The store's options for a URL ``logdir`` (fsspec storage
    options: ``endpoint_url``, ``key``, ``secret``…); the hook takes them as ``backend_args``."""
    spool_dir: Optional[str] = None
    """Where a URL run is written before its upload; None: ``$UNITB_SPOOL`` or ``~/.cache/unitb/spool``."""
    upload_interval: float = 30.0
    """Seconds between uploads of a URL run (it is also uploaded after every checkpoint)."""
    upload_timeout: float = 60.0
    """Seconds ``close()`` keeps retrying the last upload."""
    max_spool_mb: Optional[float] = 2048.0
    """A backlog of this many megabytes pauses images and histograms (scalars go on)."""

    def __post_init__(self) -> None:
        self.storage_options = storage.check_storage_options(self.storage_options)
        for name in ("upload_interval", "upload_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_spool_mb is not None and (isinstance(self.max_spool_mb, bool) or not isinstance(
                self.max_spool_mb, (int, float)) or self.max_spool_mb <= 0):
            raise ValueError(f"max_spool_mb must be a positive number of megabytes or None, got {self.max_spool_mb!r}")
        if self.spool_dir is not None and not isinstance(self.spool_dir, (str, os.PathLike)):
            raise ValueError(f"spool_dir must be a path or None, got {self.spool_dir!r}")

    KEYS = ("storage_options", "spool_dir", "upload_interval", "upload_timeout", "max_spool_mb")

    @classmethod
    def pop_from(cls, kwargs: dict) -> "StoreOptions":
        """Take the store keywords out of an adapter's ``**kwargs`` (the rest are LogOptions)."""
        return cls(**{k: kwargs.pop(k) for k in cls.KEYS if k in kwargs})


def store_versions(url: str, storage_options: Optional[Mapping[str, Any]] = None) -> Set[int]:
    """Version numbers (1 = ``url`` itself, n = ``url-n``) that hold event files in the store."""
    url = storage.normalize_url(url)
    parent, _, base = url.rpartition("/")
    found = set()
    for name, kind in storage.listdir(parent, storage_options):
        number = versions.version_number(name, base)
        if kind == "directory" and number is not None and \
                event_files(storage.join(parent, name), storage_options):
            found.add(number)
    return found


def choose_run_location(logdir: str, resume_step: Optional[int], store: StoreOptions, warn: Callable[[str], None],
                        info: Callable[[str], None], owner: str = "unitb", resume_wait: float = 60.0) -> RunLocation:
    """Where every adapter that opens its own writer starts: a local logdir goes through
    :func:`unitb.folder.versions.prepare_run_dir`, a URL through :func:`open_url_run`."""
    if storage.is_url(logdir):
        return open_url_run(logdir, resume_step, store, warn, info, owner, resume_wait)
    folder = versions.prepare_run_dir(logdir, resume_step, warn, owner, resume_wait)
    return RunLocation(url=folder, local=folder, mirror=None)


def open_url_run(url: str, resume_step: Optional[int], store: StoreOptions, warn: Callable[[str], None],
                 info: Callable[[str], None], owner: str = "unitb", resume_wait: float = 60.0) -> RunLocation:
    url = storage.normalize_url(url)
    spool = storage.spool_path(url, store.spool_dir)
    try:
        in_store = store_versions(url, store.storage_options)
        reachable = True
    except Exception as exc:
        warn(f"{owner}: could not list {url} ({type(exc).__name__}: {exc}); going on with what this machine's "
             f"spool ({spool}) holds; uploads start when the store answers")
        in_store, reachable = set(), False
    taken = in_store | versions.taken_versions(spool)
    if resume_step:
        chosen = versions.version_path(url, max(taken, default=1))
    else:
        chosen = claim_url_version(url, taken, store, reachable, warn, owner)
        if chosen != url:
            why = "already holds another run" if 1 in taken else "was claimed by another run started at the same moment"
            warn(f"{owner}: {url} {why}; this fresh run (step 0) writes to {chosen} and leaves it untouched. "
                 "Resume from a checkpoint to continue that run instead.")
    local = storage.spool_path(chosen, store.spool_dir)
    os.makedirs(local, exist_ok=True)
    mirror = mirror_folder(local, chosen, store, warn, info, owner)
    if resume_step and reachable:
        try:
            fetched = mirror.pull()
            if fetched:
                info(f"{owner}: resumed at step {resume_step}: fetched {fetched} file(s) of {chosen} into {local}")
        except Exception as exc:
            warn(f"{owner}: could not fetch {chosen} ({type(exc).__name__}: {exc}); steps before {resume_step} "
                 "stay in the store as they are, and its orphans (if any) are not set aside")

    before = set(set_aside.removals(local))
    folder = versions.prepare_run_dir(local, resume_step, warn, owner, resume_wait)
    if set(set_aside.removals(local)) - before:
        info(f"{owner}: the store's copy of {chosen} gets the same clean-up (set aside under its {set_aside.TRASH}/, "
             f"nothing deleted that is not there); to put it back from any machine: "
             f"`unitb pull {chosen} DIR --include-removed` then `unitb restore DIR`")
    return RunLocation(url=chosen, local=folder, mirror=mirror.start())


def claim_url_version(url: str, taken: Set[int], store: StoreOptions, reachable: bool,
                      warn: Callable[[str], None], owner: str = "unitb") -> str:
    """The first version of ``url`` past ``taken`` that this run claims both in this machine's
    spool and in the store (:mod:`unitb.folder.claim`); with a store that offers no create-only write,
    or that did not answer at start, the spool's claim alone (one warning says what stays racy)."""
    def claim_both(candidate: str) -> bool:
        local = storage.spool_path(candidate, store.spool_dir)
        if not claim.claim_folder(local):
            return False  # a run on this machine holds it
        if not reachable:
            return True
        won = claim.claim_url(candidate, store.storage_options)
        if won is None:
            warn(f"{owner}: {candidate}: the store did not accept a create-only write (If-None-Match), so the "
                 "folder is chosen from its listing; runs started at the same moment on different machines may "
                 "share it")
            return True
        if not won:
            claim.release(local)  # another machine claimed it first
        return won

    return versions.claim_from(url, max(taken) + 1 if taken else 1, claim_both)


def mirror_folder(local: str, url: str, store: StoreOptions, warn: Callable[[str], None],
                  info: Callable[[str], None], owner: str = "unitb") -> Mirror:
    """The mirror of ``local`` to ``url``: the one still running for it, else a new one (not
    started). For a spool folder, or one someone else chose (mmengine's ``<timestamp>/vis_data``)."""
    return Mirror.running(local, storage.normalize_url(url)) or Mirror(
        local, url, store.storage_options, interval=store.upload_interval, max_backlog_mb=store.max_spool_mb,
        upload_timeout=store.upload_timeout, warn=warn, info=info, owner=owner)


def newest_earlier_folder(parent_url: str, before: str, leaf: str,
                          storage_options: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """The newest ``parent_url/<name>/<leaf>`` holding event files with ``name < before``
    (mmengine's ``%Y%m%d_%H%M%S`` timestamp folders sort by time): where an interrupted
    mmengine run's curves are in the store when this machine has no copy."""
    entries = storage.listdir(parent_url, storage_options)
    # A prefix named ``..`` (or anything that is not one plain name) would put the fetched
    # folder outside the work_dir: such names are never candidates.
    names = (n for n, kind in entries if kind == "directory" and safe_paths.plain_name(n) and n < before)
    for name in sorted(names, reverse=True):
        candidate = storage.join(parent_url, name, leaf)
        if event_files(candidate, storage_options):
            return name
    return None
