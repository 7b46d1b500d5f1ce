"""Arrow arrays made from numpy's buffers and Python strings, for the compiled writers.

``pa.array`` and ``pa.scalar`` import pandas where it is installed, a third of a second on
the first call: longer than formatting a 500k-row run. These build the same arrays from
buffers, so exporting never imports pandas. pyarrow is imported by the caller's first use.
"""
from __future__ import annotations

from typing import Any, List

import numpy as np


def numbers(values, dtype) -> Any:
    """A numpy-compatible column as an Arrow array of ``dtype`` (int32, int64 or float64)."""
    import pyarrow as pa

    array = np.ascontiguousarray(np.asarray(values).astype(dtype, copy=False))
    kind = pa.from_numpy_dtype(array.dtype)
    return pa.Array.from_buffers(kind, len(array), [None, pa.py_buffer(array)])


def mask(flags: np.ndarray) -> Any:
    """A boolean numpy array as an Arrow boolean array (bits, least significant first)."""
    import pyarrow as pa

    packed = np.packbits(np.asarray(flags, bool), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(flags), [None, pa.py_buffer(packed)])


def strings(texts: List[str]) -> Any:
    """Python strings as an Arrow string array."""
    import pyarrow as pa

    encoded = [text.encode() for text in texts]
    offsets = np.zeros(len(encoded) + 1, np.int32)
    np.cumsum([len(text) for text in encoded], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets),
                                                             pa.py_buffer(b"".join(encoded))])


def string(text: str) -> Any:
    """An Arrow string scalar."""
    return strings([text])[0]


def nullable(cells: List[object], kind: str) -> Any:
    """Python values (None for a missing one) as an Arrow array of ``kind``: "int64",
    "float64", "bool" or "string"."""
    import pyarrow as pa

    present = np.array([cell is not None for cell in cells], bool)
    validity = pa.py_buffer(np.packbits(present, bitorder="little"))
    if kind == "string":
        encoded = [b"" if cell is None else str(cell).encode() for cell in cells]
        offsets = np.zeros(len(encoded) + 1, np.int32)
        np.cumsum([len(text) for text in encoded], out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), len(cells), [validity, pa.py_buffer(offsets),
                                                               pa.py_buffer(b"".join(encoded))])
    if kind == "bool":
        bits = np.packbits(np.array([bool(cell) for cell in cells], bool), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(cells), [validity, pa.py_buffer(bits)])
    dtype = np.dtype(kind)
    array = np.array([0 if cell is None else cell for cell in cells], dtype)
    return pa.Array.from_buffers(pa.from_numpy_dtype(dtype), len(cells), [validity, pa.py_buffer(array)])


def column_of(cells: List[object]) -> Any:
    """Values of one field across rows (None: missing) as one typed Arrow column: integers as
    int64, numbers with a float among them as float64, booleans as bool, anything mixed (``8``
    beside ``"8"``) as text, so no row's value is lost to a type."""
    kinds = {type(cell) for cell in cells if cell is not None}
    if kinds == {int}:
        return nullable(cells, "int64")
    if kinds in ({float}, {int, float}):
        return nullable([None if cell is None else float(cell) for cell in cells], "float64")  # type: ignore[arg-type]
    if kinds == {bool}:
        return nullable(cells, "bool")
    return nullable(cells, "string")
