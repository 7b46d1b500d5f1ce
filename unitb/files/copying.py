"""Copying a byte range from one open file to another a block at a time: memory stays at one
block whatever the file's size (the mirror's uploads, a resume's rewrite, a folder's export)."""
from __future__ import annotations

from typing import IO, Callable, Optional

BLOCK_BYTES = 8 << 20


def copy_bytes(source: IO[bytes], target: IO[bytes], count: int,
               on_block: Optional[Callable[[bytes], None]] = None) -> int:
    """Copy up to ``count`` bytes from ``source``'s position to ``target``; a file that ends
    sooner ends the copy. ``on_block`` sees each block written (a checksum). Returns the bytes
    copied."""
    left = count
    while left > 0:
        block = source.read(min(BLOCK_BYTES, left))
        if not block:
            break
        target.write(block)
        if on_block is not None:
            on_block(block)
        left -= len(block)
    return count - left
