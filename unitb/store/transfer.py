"""``unitb pull`` / ``unitb push``: move runs between an object store and a local folder.

TensorBoard reads local folders everywhere, but object stores only where its file system
has the scheme (``gs://`` in the default fast loader; ``s3://`` needs TensorFlow's
tensorflow-io plugin, which has no build for current TensorFlow). ``pull`` copies a run —
or a whole tree of runs — into a folder TensorBoard can always read; run it again (or with
``every``) and only files that changed are fetched. ``push`` uploads a spool that a run
left behind when the store was away at its end.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Optional, Tuple

from unitb.files import safe_paths
from unitb.files import storage
from unitb.files.names import CLAIM, REMOVED
from unitb.store.mirror import Mirror
from unitb.notices import default_warn


def pull(url: str, dest: str, options: Optional[Mapping[str, Any]] = None,
         include_removed: bool = False, warn: Optional[Callable[[str], None]] = None) -> Tuple[int, int]:
    """Copy every file below ``url`` into ``dest`` (same layout). A local file of the same
    size is kept (event files only grow); ``.unitb-removed`` is skipped unless asked for.
    An object whose name would reach outside ``dest`` (``..``, an absolute key, a symlink
    already in ``dest``: :mod:`unitb.files.safe_paths`) is skipped, with one warning naming it.
    Returns ``(fetched, unchanged)``."""
    fs, root = storage.filesystem(url, options)
    listing = storage.listing(fs, root)
    wanted = [rel for rel in sorted(listing) if (include_removed or REMOVED not in rel.split("/"))
              and rel.rsplit("/", 1)[-1] != CLAIM]  # another machine's claim is no part of the run
    targets, refused = safe_paths.plan_targets(wanted, dest)
    if refused:
        (warn or default_warn)(f"unitb pull: {safe_paths.describe_refused(refused, url)}")
    fetched = unchanged = 0
    for rel, target in targets.items():
        if os.path.isfile(target) and os.path.getsize(target) == listing[rel]:
            unchanged += 1  # event files only grow: the same size is the same file
            continue
        storage.fetch_file(fs, f"{root}/{rel}", target)  # TensorBoard never sees a half-written file
        fetched += 1
    return fetched, unchanged


def pull_every(url: str, dest: str, seconds: float, options: Optional[Mapping[str, Any]] = None,
               report=print) -> None:
    """Keep ``dest`` up to date with ``url`` until interrupted (for a TensorBoard on ``dest``)."""
    while True:
        fetched, _ = pull(url, dest, options)
        if fetched:
            report(f"unitb: fetched {fetched} file(s) from {url}")
        time.sleep(seconds)


def push(local: str, url: str, options: Optional[Mapping[str, Any]] = None, timeout: float = 60.0) -> bool:
    """Upload what ``local`` holds that ``url`` does not (retrying for ``timeout`` seconds)."""
    return Mirror(local, url, options, upload_timeout=timeout, owner="unitb push").close()
