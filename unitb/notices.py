"""How unitb tells a user something: the one warning type, and the two ways it is said.

Every module that warns or informs imports from here (a leaf: it imports nothing of unitb),
so telling a user something never pulls the writer, the reader or the backends in.
"""
from __future__ import annotations

import sys
import warnings


class UnitbWarning(UserWarning):
    """A logging problem unitb worked around; training goes on."""


def default_warn(message: str) -> None:
    """One UnitbWarning, shown as ``unitb: UnitbWarning: ...`` rather than pointing at a line
    inside unitb (which tells a user nothing); warning filters apply as usual."""
    registry: dict = {}  # each call is shown: RunLogger already says every kind of thing once
    warnings.warn_explicit(message, UnitbWarning, filename="unitb", lineno=0, module="unitb", registry=registry)


def default_info(message: str) -> None:
    """Something a user should see that is not a problem (where a run went, a backlog that
    caught up): one line on stderr."""
    print(message if message.startswith("unitb") else f"unitb: {message}", file=sys.stderr, flush=True)
