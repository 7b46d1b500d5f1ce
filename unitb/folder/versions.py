"""Which folder a run writes into: the same rule for every adapter.

- A **fresh** run (nothing restored: step 0) into a folder that already holds event files
  of another run never touches them: it writes into the next free versioned sibling,
  ``runs/exp`` -> ``runs/exp-2`` -> ``runs/exp-3``, and says so once. TensorBoard then lists
  both runs side by side.
- A **resumed** run (a restored step ``S >= 1``) continues the newest version of the folder
  (``runs/exp-3`` when it exists and holds events, else ``runs/exp``), where its own earlier
  steps are; orphans after ``S`` are set aside there (:mod:`unitb.folder.set_aside`).
"""
from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Set, Tuple

from unitb.folder import claim, set_aside
from unitb.files.event_files import event_files

_VERSION = re.compile(r"^(?P<base>.+)-(?P<n>\d+)$")


def holds_run(folder: str) -> bool:
    """True when ``folder`` has event files directly inside it."""
    return bool(event_files(folder))


def version_number(name: str, base: str) -> Optional[int]:
    """1 for ``base`` itself, n for ``base-n`` (n >= 2), None for any other name. The one
    naming rule, for local folders and for a store's prefixes alike."""
    if name == base:
        return 1
    match = _VERSION.match(name)
    if match and match.group("base") == base and int(match.group("n")) >= 2:
        return int(match.group("n"))
    return None


def _numbered_versions(logdir: str) -> List[Tuple[int, str]]:
    logdir = os.path.normpath(logdir)
    parent, base = os.path.split(logdir)
    found = [(1, logdir)]
    try:
        names = os.listdir(parent or ".")
    except OSError:
        names = []
    for name in names:
        number = version_number(name, base)
        if number is not None and number >= 2:
            found.append((number, os.path.join(parent, name)))
    return sorted(found)


def versions(logdir: str) -> List[str]:
    """``logdir`` and its versioned siblings ``logdir-2``, ``logdir-3``..., oldest first."""
    return [path for _n, path in _numbered_versions(logdir)]


def taken_versions(logdir: str) -> Set[int]:
    """The version numbers of ``logdir`` (1 = itself, n = ``logdir-n``) that hold a run."""
    return {n for n, path in _numbered_versions(logdir) if holds_run(path)}


def latest_version(logdir: str) -> str:
    """The newest version of ``logdir`` that holds a run (``logdir`` itself when none does)."""
    with_events = [v for v in versions(logdir) if holds_run(v)]
    return with_events[-1] if with_events else os.path.normpath(logdir)


def next_free_version(logdir: str) -> str:
    """``logdir`` when it holds no run; else one past the newest version that holds one."""
    logdir = os.path.normpath(logdir)
    if not holds_run(logdir):
        return logdir
    newest = latest_version(logdir)
    match = _VERSION.match(os.path.basename(newest)) if newest != logdir else None
    return f"{logdir}-{int(match.group('n')) + 1 if match else 2}"


def version_path(logdir: str, number: int) -> str:
    """``logdir`` for version 1, ``logdir-n`` for version n (a path or a URL)."""
    return logdir if number == 1 else f"{logdir}-{number}"


MAX_VERSIONS = 10000


def claim_from(logdir: str, number: int, claim_one: Optional[Callable[[str], bool]] = None) -> str:
    """The first version of ``logdir`` (a folder or a URL) from ``number`` on that ``claim_one``
    claims (default: :func:`unitb.folder.claim.claim_folder`): runs started together each get their own."""
    if claim_one is None:
        claim_one = claim.claim_folder
    for n in range(number, number + MAX_VERSIONS):
        candidate = version_path(logdir, n)
        if claim_one(candidate):
            return candidate
    raise RuntimeError(f"no free version of {logdir} among {MAX_VERSIONS} tried")


def claim_fresh_version(logdir: str) -> str:
    """The next free version of ``logdir`` (:func:`next_free_version`), or a later one when a
    run started at the same moment claimed it first."""
    logdir = os.path.normpath(logdir)
    first = next_free_version(logdir)
    return claim_from(logdir, version_number(os.path.basename(first), os.path.basename(logdir)) or 1)


def choose_run_dir(logdir: str, resume_step: Optional[int], warn: Optional[Callable[[str], None]] = None,
                   owner: str = "unitb") -> str:
    """The folder this run writes into (see the module docstring); creates it. A fresh run
    claims it (:mod:`unitb.folder.claim`), so parallel starts never share one."""
    if resume_step:
        chosen = latest_version(logdir)
    else:
        chosen = claim_fresh_version(logdir)
        if chosen != os.path.normpath(logdir) and warn is not None:
            why = "already holds another run" if holds_run(logdir) else \
                "was claimed by another run started at the same moment"
            warn(f"{owner}: {logdir} {why}; this fresh run (step 0) writes to {chosen} and leaves it untouched. "
                 "Resume from a checkpoint to continue that run instead.")
    os.makedirs(chosen, exist_ok=True)
    return chosen


def prepare_run_dir(logdir: str, resume_step: Optional[int], warn: Callable[[str], None],
                    owner: str = "unitb", resume_wait: float = 60.0) -> str:
    """Pick the folder (:func:`choose_run_dir`) and, on a real resume, claim it (waiting up to
    ``resume_wait`` seconds for a live writer to let go, :func:`unitb.folder.claim.claim_for_resume`)
    and set aside the steps the interrupted run wrote after ``resume_step``
    (:func:`unitb.folder.set_aside.truncate_run`). Every adapter that opens its own writer starts here."""
    folder = choose_run_dir(logdir, resume_step, warn, owner)
    if resume_step:
        claim.claim_for_resume(folder, resume_wait, owner)
        cleanup = set_aside.truncate_run(folder, int(resume_step))
        if cleanup is not None:
            warn(f"{owner}: {cleanup.describe(int(resume_step), folder)}")
    return folder
