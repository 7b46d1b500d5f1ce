"""Names that come from outside never leave the folder they are meant for.

An object store allows any key: ``runs/exp/../../x``, ``/etc/x``, ``a\\b``, ``a//b``. A
bucket shared by a team (or written by a compromised job) can hold such keys, and a
journal or manifest file left in a run folder can name any path. Every place where such a
name becomes a local path goes through this module:

- :func:`unsafe_reason` says why a store key (relative to the folder being copied) must not
  become a local path: absolute, a backslash, an empty, ``.`` or ``..`` segment, a NUL.
- :func:`local_target` joins a checked key below a destination folder and refuses when a
  folder or file on the way is a symlink (it could point anywhere), or when the result is
  not below the destination for any other reason.
- :func:`plain_name` is the rule for a single file or folder name read from outside.

Nothing here raises into training: callers skip what is refused and warn once, naming it.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Tuple


class UnsafePath(ValueError):
    """A name from outside that would reach outside its folder."""


def unsafe_reason(key: str) -> Optional[str]:
    """Why the store key ``key`` (``/``-separated, relative to the folder being copied) may not
    become a local path, or None when it is safe."""
    if not isinstance(key, str) or not key:
        return "empty name"
    if "\x00" in key:
        return "NUL character"
    if "\\" in key:
        return "backslash"
    if key.startswith("/"):
        return "absolute key"
    parts = key.split("/")
    if any(part == "" for part in parts):
        return "empty path segment"
    if any(part in (".", "..") for part in parts):
        return "'.' or '..' segment"
    return None


def plain_name(name: object) -> bool:
    """True for one file or folder name that stays where it is joined: not empty, not ``.`` or
    ``..``, no separator of any platform, no NUL."""
    return isinstance(name, str) and unsafe_reason(name) is None and "/" not in name


def _inside(path: str, root: str) -> bool:
    root = os.path.abspath(root)
    path = os.path.abspath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def local_target(dest: str, key: str) -> str:
    """The local path for the store key ``key`` below ``dest``. Raises :class:`UnsafePath`
    for a key :func:`unsafe_reason` refuses, and when a folder or file already on the way
    below ``dest`` is a symlink (writing through it could land anywhere). ``dest`` itself is
    the user's choice and may be a link."""
    reason = unsafe_reason(key)
    if reason:
        raise UnsafePath(reason)
    current = os.path.abspath(dest)
    for part in key.split("/"):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise UnsafePath(f"{current} is a symlink")
    if not _inside(current, dest):  # belt and braces: the checks above already ensure it
        raise UnsafePath("outside the destination")
    return current


def plan_targets(keys: Iterable[str], dest: str) -> Tuple[Dict[str, str], List[Tuple[str, str]]]:
    """``({key: local path}, [(refused key, why)])`` for copying ``keys`` below ``dest``."""
    targets: Dict[str, str] = {}
    refused: List[Tuple[str, str]] = []
    for key in keys:
        try:
            targets[key] = local_target(dest, key)
        except UnsafePath as exc:
            refused.append((key, str(exc)))
    return targets, refused


def describe_refused(refused: List[Tuple[str, str]], source: str, limit: int = 20) -> str:
    """One warning for every object skipped in one pass, naming them (the first ``limit``)."""
    shown = ", ".join(f"{key!r} ({why})" for key, why in refused[:limit])
    more = f" and {len(refused) - limit} more" if len(refused) > limit else ""
    return (f"skipped {len(refused)} object(s) of {source} whose names would reach outside the folder they "
            f"are copied into: {shown}{more}; nothing was written for them")


def within(path: str, root: str) -> bool:
    """True when ``path`` is ``root`` or below it (after normalisation; links not followed)."""
    return _inside(path, root)
