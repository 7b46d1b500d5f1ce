"""Files made from the code (the module maps, the reference pages): rewritten, or checked."""
from __future__ import annotations

import os
import sys
from typing import Dict


def refresh(fresh: Dict[str, str], check: bool, command: str) -> int:
    """Write each ``{path: text}`` that differs (``check``: only say which differ, exit status 1)."""
    stale = []
    for path, text in fresh.items():
        old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if old != text:
            stale.append(os.path.relpath(path))
            if not check:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
    if check and stale:
        print(f"out of date: {', '.join(stale)}: run {command}", file=sys.stderr)
        return 1
    return 0
