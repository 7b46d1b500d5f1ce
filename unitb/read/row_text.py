"""A run's rows as CSV or JSON text: what ``unitb export`` writes.

The text is fixed: a CSV row is what ``csv.writer`` writes for ``(tag, step, "%.6f" % wall_time,
kind, value)``, a JSON row what ``json.dumps`` writes for the row's dict, and a scalar's number
is Python's ``repr`` of it. Scalars are nearly every row of a big run, so their stretches are
formatted column-wise by Arrow's compiled kernels when pyarrow is installed (``unitb[parquet]``)
and by Python otherwise — the two give the same bytes (a test compares them on millions of
numbers). Arrow writes a float in the shortest form that reads back exactly, the same digits
as ``repr``; only the notation differs in known ranges, which are mended here, and the few
numbers where that would take more than a pattern are formatted by Python.

Text is handed out as bytes (UTF-8) so a caller writes it to a binary file without decoding.
"""
from __future__ import annotations

import csv
import io
import json
from collections import deque
from typing import Any, Deque, Dict, Iterator, List, Optional

import numpy as np

from unitb.read import parallel, run_reader
from unitb.read.arrow_arrays import mask, numbers, string, strings

CSV_HEADER = ("tag", "step", "wall_time", "kind", "value")
ENCODERS = min(2, parallel.cores())  # threads formatting scalars (more gained nothing on this project's 2 cores)
SPLIT_FROM = 20_000  # a stretch of fewer scalars is formatted whole, on one thread


def row_value(row: run_reader.Row) -> object:
    """What a row's value column holds: the number or text itself, a summary of the others."""
    if row.kind == "scalar":
        return row.value
    if row.kind == "histogram":
        buckets: Any = row.value
        return {"buckets": int(buckets.shape[0]), "count": float(buckets[:, 2].sum())}
    if row.kind == "image":
        image: Any = row.value
        return {"width": image["width"], "height": image["height"], "images": len(image["png"])}
    if row.kind == "text":
        return row.value
    return None


def csv_line(cells: tuple) -> str:
    """One CSV line as ``csv.writer`` writes it (``\\r\\n`` at the end)."""
    line = io.StringIO()
    csv.writer(line).writerow(cells)
    return line.getvalue()


def csv_cells(row: run_reader.Row) -> tuple:
    value = row_value(row)
    return (row.tag, row.step, "%.6f" % row.wall_time, row.kind,
            value if isinstance(value, (int, float, str)) or value is None else json.dumps(value))


def json_object(row: run_reader.Row, run: Optional[str] = None) -> str:
    fields: Dict[str, object] = {} if run is None else {"run": run}
    fields.update({"tag": row.tag, "step": row.step, "wall_time": row.wall_time, "kind": row.kind,
                   "value": row_value(row)})
    return json.dumps(fields)


class RunText:
    """The text of one run's rows, chunk by chunk. ``run``: the run's name, written as a first
    column (CSV) or first key (JSON) when a folder of runs is exported as one table."""

    def __init__(self, fmt: str, run: Optional[str] = None, compiled: Optional[bool] = None) -> None:
        self.fmt = fmt
        self.run = run
        self.compiled = _arrow_available() if compiled is None else compiled
        self._prefix = "" if run is None else (csv_line((run,))[:-2] + "," if fmt == "csv" else
                                               '"run": ' + json.dumps(run) + ", ")
        self._quoted: Dict[str, str] = {}  # tag -> a line's start up to the tag (quoted once, used for every row)

    def pieces(self, run_dir: str) -> Iterator[bytes]:
        """The run's rows as text: CSV lines, or JSON objects each followed by ``,\\n``. With
        Arrow, stretches of scalars are formatted on ``ENCODERS`` threads (its kernels let go of
        the GIL) while the next block is read; the pieces come out in the rows' order."""
        rows = run_reader.row_chunks(run_dir, arrays=True)
        if not self.compiled or ENCODERS < 2:
            for chunk in rows:
                yield self.scalars(chunk) if isinstance(chunk, run_reader.ScalarRows) else self._other(chunk)
            return
        from concurrent.futures import Future, ThreadPoolExecutor

        pending: Deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=ENCODERS, thread_name_prefix="unitb-encode") as pool:
            for chunk in rows:
                if isinstance(chunk, run_reader.ScalarRows):
                    self._quote(chunk)
                    for part in _split(chunk, ENCODERS):
                        pending.append(pool.submit(self.scalars, part, quoted=True))
                else:
                    done: Future = Future()
                    done.set_result(self._other(chunk))
                    pending.append(done)
                while len(pending) > 2 * ENCODERS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _other(self, row: run_reader.Row) -> bytes:
        if self.fmt == "csv":
            return (self._prefix + csv_line(csv_cells(row))).encode()
        return (json_object(row, self.run) + ",\n").encode()

    def _quote(self, chunk: run_reader.ScalarRows) -> None:
        """Each tag's line start, quoted once for every row of it."""
        for tag in chunk.tag_names if chunk.tag_names is not None else set(chunk.tags):
            if tag not in self._quoted:
                self._quoted[tag] = (self._prefix + csv_line((tag,))[:-2] if self.fmt == "csv"
                                     else "{" + self._prefix + '"tag": ' + json.dumps(tag))

    def scalars(self, chunk: run_reader.ScalarRows, quoted: bool = False) -> bytes:
        """A stretch of scalar rows (columns as from ``row_chunks(arrays=True)``); ``quoted``:
        its tags' line starts are made already."""
        if not quoted:
            self._quote(chunk)
        values = np.asarray(chunk.values, np.float64)
        walls = np.asarray(chunk.wall_times, np.float64)
        if self.fmt == "json" and not (np.isfinite(values).all() and np.isfinite(walls).all()):
            return "".join(json_object(run_reader.Row(tag, step, wall, "scalar", value), self.run) + ",\n"
                           for tag, step, wall, value in zip(list(chunk.tags), np.asarray(chunk.steps).tolist(),
                                                             walls.tolist(), values.tolist())).encode()
        if self.compiled:
            return _arrow_lines(self.fmt, chunk, self._quoted, values, walls)
        tags = map(self._quoted.__getitem__, list(chunk.tags))
        steps = np.asarray(chunk.steps).tolist()
        line = _CSV_SCALAR if self.fmt == "csv" else _JSON_SCALAR
        return "".join(map(line, tags, steps, walls.tolist(), values.tolist())).encode()


_CSV_SCALAR = "{},{},{:.6f},scalar,{!r}\r\n".format  # what csv.writer writes for such a row
_JSON_SCALAR = '{}, "step": {}, "wall_time": {!r}, "kind": "scalar", "value": {!r}}},\n'.format  # after '{"tag": …'


def _split(chunk: run_reader.ScalarRows, parts: int) -> List[run_reader.ScalarRows]:
    """``chunk`` in ``parts`` consecutive stretches (one when it is small), each with its own copy
    of the tag names read so far (the reader goes on adding to its list)."""
    count = len(chunk.values)
    names = list(chunk.tag_names) if chunk.tag_names is not None else None
    if count < SPLIT_FROM:
        return [chunk._replace(tag_names=names)]
    bounds = [count * i // parts for i in range(parts + 1)]
    return [run_reader.ScalarRows(chunk.tags[a:b], chunk.steps[a:b], chunk.wall_times[a:b], chunk.values[a:b],
                                  chunk.file, None if chunk.tag_ids is None else chunk.tag_ids[a:b], names)
            for a, b in zip(bounds, bounds[1:])]


def _arrow_available() -> bool:
    try:
        import pyarrow.compute  # noqa: F401
    except ImportError:
        return False
    return True


def _arrow_lines(fmt: str, chunk: run_reader.ScalarRows, quoted: Dict[str, str], values: np.ndarray,
                 walls: np.ndarray) -> bytes:
    """The lines of a stretch of scalars, every column formatted and joined by Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if chunk.tag_ids is not None and chunk.tag_names is not None:
        table = strings([quoted[name] for name in chunk.tag_names])
        tags = pc.take(table, numbers(chunk.tag_ids, np.int64))
    else:
        tags = strings([quoted[tag] for tag in chunk.tags])
    steps = pc.cast(numbers(chunk.steps, np.int64), pa.string())
    if fmt == "csv":
        parts: List[Any] = [tags, ",", steps, ",", _fixed6(walls), ",scalar,", _reprs(values), "\r\n"]
    else:
        parts = [tags, ', "step": ', steps, ', "wall_time": ', _reprs(walls),
                 ', "kind": "scalar", "value": ', _reprs(values), "},\n"]
    lines = pc.binary_join_element_wise(*[string(p) if isinstance(p, str) else p for p in parts], string(""))
    return _joined(lines)


def _joined(lines) -> bytes:
    """Every string of an Arrow string array, back to back: its data buffer between the first
    and the last offset (no copy until ``bytes``)."""
    if not len(lines):
        return b""
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset:lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]].tobytes()


# Python's repr writes a float positionally for decimal exponents -4..15 and with an exponent
# of at least two digits otherwise, and positional integers keep ".0". Arrow writes the same
# shortest digits, positionally for exponents -6..9. So: integers below 1e10 get ".0",
# exponents below -6 get their second digit, and the two stretches where the notations
# differ (1e-6 <= |x| < 1e-4, 1e10 <= |x| < 1e16) are formatted by Python.
def _reprs(values: np.ndarray):
    """``repr`` of each float, as an Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.cast(numbers(values, np.float64), pa.string())
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        integral = (magnitude < 1e10) & (values == np.floor(values))
        by_python = ((magnitude >= 1e10) & (magnitude < 1e16)) | ((magnitude >= 1e-7) & (magnitude < 1e-4))
        tiny = (magnitude < 1e-7) & (magnitude > 0)
    if integral.any():
        text = pc.if_else(mask(integral), pc.binary_join_element_wise(text, string(".0"), string("")), text)
    if tiny.any():
        text = pc.replace_substring_regex(text, r"e-(\d)$", r"e-0\1")
    return _by_python(text, values, by_python, repr)


# "%.6f" of a wall time: its integer part, a dot, and its fraction in microseconds rounded half
# to even, as printf rounds the exact binary value. From 2**19 seconds on, the fraction of a
# double has at most 33 significant bits, so the fraction times 1e6 is exact and numpy's rint
# rounds it exactly as printf does; smaller, negative or non-finite times are formatted by Python.
_EXACT_FROM = float(2 ** 19)
_EXACT_BELOW = float(2 ** 62)


def _fixed6(walls: np.ndarray):
    """``"%.6f" % w`` of each wall time, as an Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    exact = (walls >= _EXACT_FROM) & (walls < _EXACT_BELOW)  # False for NaN
    seconds = np.where(exact, np.floor(walls), 0.0)
    micros = np.rint((np.where(exact, walls, 0.0) - seconds) * 1e6)
    carry = micros >= 1e6
    seconds, micros = seconds + carry, np.where(carry, 0.0, micros)
    text = pc.binary_join_element_wise(pc.cast(numbers(seconds, np.int64), pa.string()),
                                       pc.utf8_lpad(pc.cast(numbers(micros, np.int64), pa.string()), 6, "0"),
                                       string("."))
    return _by_python(text, walls, ~exact, "%.6f".__mod__)


def _by_python(text, source: np.ndarray, where: np.ndarray, form):
    """``text`` with the entries at ``where`` replaced by ``form(number)``."""
    if not where.any():
        return text
    import pyarrow.compute as pc

    picked = source[where].tolist()
    return pc.replace_with_mask(text, mask(where), strings([form(number) for number in picked]))
