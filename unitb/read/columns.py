"""Scalars read straight off the record bytes with numpy, a block of records at a time.

Most of a run's records are scalar events of two fixed shapes:

- torch's ``SummaryWriter`` form: one ``Value{tag, simple_value}`` an event;
- the tensor form ``tf.summary.scalar`` and unitb's TF sink write: ``Value{tag, tensor{DT_FLOAT
  or DT_DOUBLE, shape [], one number}, metadata{plugin "scalars"}}``, one or many an event.

Parsing them with protobuf is fast; touching the parsed fields from Python (an object per
field) is what costs. So the fields of these two shapes are located and gathered here for
all records of a block at once, as arrays. A record that is not exactly one of these shapes
(histograms, images, text, a scalar with a description, the file-version event, a damaged
record, ...) is handed back as an ``Event`` parsed by protobuf, so nothing is read
differently: the array path only takes a record whose every byte it has accounted for.

Protobuf writes fields in field-number order (``Event``: wall_time 1, step 2, summary 5;
``Value``: tag 1, simple_value 2, tensor 8, metadata 9), which is what the checks below
expect; a writer that orders them otherwise simply lands on the protobuf path.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from unitb.read import records as records_io

# SummaryMetadata{plugin_data{plugin_name: "scalars"}}: what tf.summary.scalar and the
# tensorboard scalar plugin's create_summary_metadata() serialize (checked by a test), and the
# same with data_class: DATA_CLASS_SCALAR, which writers that set the data class add.
SCALARS_METADATA = b"\x0a\x09\x0a\x07scalars"
SCALARS_METADATA_FORMS = (SCALARS_METADATA, SCALARS_METADATA + b"\x20\x01")
_MAX_TAG_BYTES = 1024  # longer tags (none in practice) take the protobuf path
_PAD = bytes(32)  # gathers a few bytes past a record's end never leave the buffer


class TagTable:
    """Tag ids shared by every block of a run: ``names[id]`` is the tag."""

    def __init__(self) -> None:
        self.names: List[str] = []
        self._ids: Dict[bytes, int] = {}

    def id_of(self, raw: bytes) -> int:
        """The id of a tag given as its UTF-8 bytes (raises UnicodeDecodeError like protobuf)."""
        found = self._ids.get(raw)
        if found is None:
            self.names.append(raw.decode("utf-8"))
            found = self._ids[raw] = len(self.names) - 1
        return found


class Block(NamedTuple):
    """One block of a file: its scalars as arrays (in record, then value order) and the other
    records as parsed ``Event`` s with their index in the file."""

    record: np.ndarray  # int64: the index in the file of each scalar's record
    tag: np.ndarray  # int64: ids into the run's TagTable
    step: np.ndarray  # int64
    wall_time: np.ndarray  # float64
    value: np.ndarray  # float64 (a float32 scalar widened exactly, as protobuf returns it)
    others: List[Tuple[int, Any]]  # (record, a tensorboard Event)


def blocks(path: str, tags: TagTable, first: int = 0) -> Iterator[Block]:
    """The blocks of one event file, in file order; records are numbered from ``first`` (a
    reader of several files gives each its own range, so numbers order a whole run)."""
    for data, starts, lengths, _base in records_io.record_spans(path):
        yield _block(data, starts, lengths, first, tags)
        first += len(starts)


def _headers(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """``(wall_time, step, has_step, pos, ok)`` of each record, read from the two fields protobuf
    writes first (absent ones are 0, as protobuf reads them), with ``pos`` where the next field
    starts; ``ok`` is False where a field is cut short."""
    count = len(starts)
    ok = ends > starts
    pos = starts.copy()
    wall = np.zeros(count)
    step = np.zeros(count, np.int64)
    has = ok & (buf[pos] == 0x09) & (pos + 9 <= ends)
    wall[has] = _gather(buf, pos[has] + 1, "<f8")
    pos += 9 * has
    has_step = ok & (pos < ends) & (buf[pos] == 0x10)
    steps, size, valid = _varint(buf, pos[has_step] + 1)
    step[has_step] = steps.view(np.int64)
    pos[has_step] += 1 + size
    ok[np.flatnonzero(has_step)[~valid]] = False
    has_step &= ok & (pos <= ends)
    return wall, step, has_step, pos, ok & (pos <= ends)


def record_steps(data: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The step of each record as protobuf reads it, -1 for a record protobuf cannot parse: from
    the bytes where the step field is where protobuf writes it, from protobuf's own parse for
    the other records (the file-version event and step-0 events, which have no step field)."""
    buf = np.frombuffer(data + _PAD, np.uint8)
    _wall, step, has_step, _pos, _ok = _headers(buf, starts, starts + lengths)
    from tensorboard.compat.proto import event_pb2

    for index in np.flatnonzero(~has_step).tolist():
        start = int(starts[index])
        event = records_io._parse_checked(data[start:start + int(lengths[index])], event_pb2)
        step[index] = -1 if event is None else event.step
    return step


def _block(data: bytes, starts: np.ndarray, lengths: np.ndarray, first: int, tags: TagTable) -> Block:
    buf = np.frombuffer(data + _PAD, np.uint8)
    ends = starts + lengths
    wall, step, _has_step, pos, ok = _headers(buf, starts, ends)
    ok &= (pos < ends) & (buf[pos] == 0x2A)  # then the summary, filling the rest of the record
    summary_size, size, valid = _varint(buf, pos + 1)
    ok &= valid & (pos + 1 + size + summary_size.astype(np.int64) == ends) & (summary_size > 0)

    values = _values(buf, np.flatnonzero(ok), pos + 1 + size, ends, ok)
    record, tag_start, tag_size, value = values
    keep = ok[record]
    record, tag_start, tag_size, value = record[keep], tag_start[keep], tag_size[keep], value[keep]
    tag_ids, bad = _tag_ids(data, buf, tag_start, tag_size, tags)
    if bad.any():  # a tag that is not UTF-8: protobuf decides what to do with the record
        ok[record[bad]] = False
        keep = ok[record]
        record, tag_ids, value = record[keep], tag_ids[keep], value[keep]
    others = _parsed_others(data, starts, ends, np.flatnonzero(~ok), first)
    return Block(record + first, tag_ids, step[record], wall[record], value, others)


def _values(buf: np.ndarray, records: np.ndarray, start: np.ndarray, ends: np.ndarray,
            ok: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ``Value`` of the summaries of ``records`` (rounds: the first value of each, then
    the second, ...), as (record, tag start, tag size, number), in record then value order.
    A record with any value of another shape is marked not ``ok``."""
    found: List[Tuple[np.ndarray, ...]] = []
    pos, end = start[records], ends[records]
    while len(records):
        good = buf[pos] == 0x0A
        size, width, valid = _varint(buf, pos + 1)
        value_start = pos + 1 + width
        value_end = value_start + size.astype(np.int64)
        good &= valid & (value_end <= end) & (buf[value_start] == 0x0A)
        size, width, valid = _varint(buf, value_start + 1)
        tag_start = value_start + 1 + width
        tag_size = size.astype(np.int64)
        field = tag_start + tag_size
        good &= valid & (tag_size <= _MAX_TAG_BYTES) & (field < value_end)
        field = np.where(good, field, 0)  # a damaged length must not index past the buffer
        number = np.zeros(len(records))
        simple = good & (buf[field] == 0x15) & (field + 5 == value_end)
        number[simple] = _gather(buf, field[simple] + 1, "<f4")
        tensor = good & ~simple & (buf[field] == 0x42)
        picked = np.flatnonzero(tensor)
        numbers, fits = _tensor_scalars(buf, field[picked], value_end[picked])
        number[picked] = numbers
        tensor[picked] = fits
        good &= simple | tensor
        ok[records[~good]] = False
        found.append((records[good], tag_start[good], tag_size[good], number[good]))
        more = good & (value_end < end)
        records, pos, end = records[more], value_end[more], end[more]
    if not found:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0)
    record, tag_start, tag_size, number = (np.concatenate(parts) for parts in zip(*found))
    order = np.argsort(record, kind="stable")  # rounds are value-major; records want record-major
    return record[order], tag_start[order], tag_size[order], number[order]


_FLOAT_FORMS = ((0x2A, 4), (0x22, 4))  # packed float_val, tensor_content: a length byte, then 4 bytes
_DOUBLE_FORMS = ((0x32, 8), (0x22, 8))


def _tensor_scalars(buf: np.ndarray, field: np.ndarray, value_end: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The number in each ``tensor`` field starting at ``field`` (a DT_FLOAT or DT_DOUBLE scalar
    followed by the scalars metadata and nothing else), and whether it is one."""
    size, width, valid = _varint(buf, field + 1)
    start = field + 1 + width
    end = np.minimum(start + size.astype(np.int64), value_end)  # past value_end: not a scalar
    fits = valid & (start + size.astype(np.int64) <= value_end)
    dtype = buf[start + 1]
    fits &= (buf[start] == 0x08) & ((dtype == 1) | (dtype == 2))
    pos = start + 2
    pos += 2 * ((buf[pos] == 0x12) & (buf[pos + 1] == 0))  # the empty shape of a scalar, if written
    number = np.zeros(len(field))
    matched = np.zeros(len(field), bool)
    for code, forms, unpacked, fmt in ((1, _FLOAT_FORMS, 0x2D, "<f4"), (2, _DOUBLE_FORMS, 0x31, "<f8")):
        nbytes = 4 if code == 1 else 8
        of_type = fits & (dtype == code)
        for key, length in forms:
            hit = of_type & ~matched & (buf[pos] == key) & (buf[pos + 1] == length) & (pos + 2 + nbytes == end)
            number[hit] = _gather(buf, pos[hit] + 2, fmt)
            matched |= hit
        hit = of_type & ~matched & (buf[pos] == unpacked) & (pos + 1 + nbytes == end)
        number[hit] = _gather(buf, pos[hit] + 1, fmt)
        matched |= hit
    metadata = np.zeros(len(field), bool)
    for form in SCALARS_METADATA_FORMS:
        form_size = len(form)
        candidates = np.flatnonzero(matched & (buf[end] == 0x4A) & (buf[end + 1] == form_size)
                                    & (end + 2 + form_size == value_end))
        if len(candidates):
            blob = buf[end[candidates, None] + 2 + np.arange(form_size)]
            metadata[candidates] = (blob == np.frombuffer(form, np.uint8)).all(axis=1)
    matched &= metadata
    return number, matched


def _tag_ids(data: bytes, buf: np.ndarray, start: np.ndarray, size: np.ndarray,
             tags: TagTable) -> Tuple[np.ndarray, np.ndarray]:
    """Each value's tag id, and whether its tag is not UTF-8. The distinct tags of a block are
    found with numpy — tags of one length at a time, as rows of 8-byte words, hashed and then
    checked word for word — and only those few are decoded in Python."""
    ids = np.empty(len(start), np.int64)
    bad = np.zeros(len(start), bool)
    for length in np.unique(size).tolist():
        rows = np.flatnonzero(size == length)
        words = _words(buf, start[rows], length)
        first, inverse = _groups(words)
        group_ids = np.empty(len(first), np.int64)
        group_bad = np.zeros(len(first), bool)
        for group, row in enumerate(rows[first].tolist()):
            begin = int(start[row])
            try:
                group_ids[group] = tags.id_of(data[begin:begin + length])
            except UnicodeDecodeError:
                group_ids[group], group_bad[group] = -1, True
        ids[rows] = group_ids[inverse]
        bad[rows] = group_bad[inverse]
    return ids, bad


def _words(buf: np.ndarray, start: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` bytes at each start as a row of little-endian 8-byte words, zero-padded."""
    width = -(-length // 8) * 8
    columns = np.arange(width)
    matrix = buf[start[:, None] + columns]
    matrix[:, columns >= length] = 0
    return matrix.view("<u8")


def _groups(words: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct row, each row's group) of a 2-D array of words."""
    with np.errstate(over="ignore"):
        hashes = (words * _weights(words.shape[1])).sum(axis=1, dtype=np.uint64)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if (words == words[first][inverse]).all():
        return first, inverse
    _, first, inverse = np.unique(words, axis=0, return_index=True, return_inverse=True)  # a hash collision
    return first, inverse.reshape(-1)


_WEIGHT_CACHE: Optional[np.ndarray] = None


def _weights(width: int) -> np.ndarray:
    """Odd 64-bit multipliers, one per word: the hash is their dot product with a row, mod 2**64."""
    global _WEIGHT_CACHE
    if _WEIGHT_CACHE is None or len(_WEIGHT_CACHE) < width:
        generator = np.random.default_rng(0x756E6974)
        _WEIGHT_CACHE = generator.integers(1, 2 ** 63, size=max(width, 256), dtype=np.uint64) | np.uint64(1)
    return _WEIGHT_CACHE[:width]


def _varint(buf: np.ndarray, pos: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value as uint64, its width in bytes, whether it ended within 10 bytes) of the varint
    at each position."""
    byte = buf[pos].astype(np.uint64)
    value = byte & np.uint64(0x7F)
    width = np.ones(len(pos), np.int64)
    more = np.flatnonzero(byte >= 0x80)
    shift = 7
    while len(more) and shift < 70:
        byte = buf[pos[more] + width[more]].astype(np.uint64)
        value[more] |= (byte & np.uint64(0x7F)) << np.uint64(shift)
        width[more] += 1
        more = more[byte >= 0x80]
        shift += 7
    valid = np.ones(len(pos), bool)
    valid[more] = False
    return value, width, valid


def _gather(buf: np.ndarray, pos: np.ndarray, fmt: str) -> np.ndarray:
    """The little-endian numbers of format ``fmt`` starting at each position."""
    size = np.dtype(fmt).itemsize
    return buf[pos[:, None] + np.arange(size)].view(fmt).reshape(-1)


def _parsed_others(data: bytes, starts: np.ndarray, ends: np.ndarray, indices: np.ndarray,
                   first: int) -> List[Tuple[int, object]]:
    """The records the array path left, parsed by protobuf (one call for all of them; a
    damaged record is skipped, as the plain reader skips it)."""
    if not len(indices):
        return []
    payloads = [data[int(starts[i]):int(ends[i])] for i in indices]
    parts: List[bytes] = []
    for payload in payloads:
        parts.append(b"\x0a" + records_io._varint(len(payload)))
        parts.append(payload)
    message = records_io._event_list_class()()
    try:
        message.ParseFromString(b"".join(parts))
        return [(first + int(i), event) for i, event in zip(indices, message.event)]
    except Exception:
        from tensorboard.compat.proto import event_pb2

        out = []
        for i, payload in zip(indices, payloads):
            event = records_io._parse_checked(payload, event_pb2)
            if event is not None:
                out.append((first + int(i), event))
        return out
