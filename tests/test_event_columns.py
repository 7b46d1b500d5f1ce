"""Scalars read off the record bytes with numpy give exactly what protobuf gives, for every
record shape a run holds, and the frame walk's predictions never change where records start."""
import random
import struct

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from unitb.read import columns
from unitb.write import protos
from unitb import reader
from unitb.read import run_reader
from unitb.read import records as records_io

SCALARS = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


def _event(step, values, wall=None):
    event = event_pb2.Event(step=step, wall_time=1.7e9 + step * 0.37 if wall is None else wall)
    event.summary.value.extend(values)
    return event


def _tensor_value(tag, number, dtype=types_pb2.DT_FLOAT, content=False, shape=True, metadata=SCALARS):
    tensor = tensor_pb2.TensorProto(dtype=dtype)
    if shape:
        tensor.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto())
    numpy_type = np.float32 if dtype == types_pb2.DT_FLOAT else np.float64
    if content:
        tensor.tensor_content = np.asarray(number, numpy_type).tobytes()
    elif dtype == types_pb2.DT_FLOAT:
        tensor.float_val.append(number)
    else:
        tensor.double_val.append(number)
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if metadata is not None:
        value.metadata.CopyFrom(metadata)
    return value


def _unpacked_float(tag, number):
    """A float tensor whose float_val is written unpacked (field 5, wire type 5), as some
    writers do: built by hand, protobuf itself always packs."""
    tensor = b"\x08\x01\x12\x00\x2d" + struct.pack("<f", number)
    body = (b"\x0a" + bytes([len(tag)]) + tag.encode() + b"\x42" + bytes([len(tensor)]) + tensor
            + b"\x4a" + bytes([len(columns.SCALARS_METADATA)]) + columns.SCALARS_METADATA)
    return summary_pb2.Summary.Value.FromString(body)


def _mixed_records(seed=0, count=3000):
    """Serialized events of every shape a run holds, in a random order."""
    rng = random.Random(seed)
    histogram = protos.histogram_summary("weights/w", np.arange(50, dtype=np.float32))
    shapes = [
        lambda s: _event(s, [summary_pb2.Summary.Value(tag="train/loss", simple_value=rng.uniform(-5, 5))]),
        lambda s: _event(s, [summary_pb2.Summary.Value(tag="ünï/cödé", simple_value=rng.random())]),
        lambda s: _event(s, [summary_pb2.Summary.Value(tag=f"many/{i}", simple_value=i * 0.5) for i in range(4)]),
        lambda s: _event(s, list(protos.scalars_summary([("tf/a", rng.random()), ("tf/b", 2.5)]).value)),
        lambda s: _event(s, [_tensor_value("tf/content", rng.random(), content=True)]),
        lambda s: _event(s, [_tensor_value("tf/double", rng.random() * 1e300, types_pb2.DT_DOUBLE)]),
        lambda s: _event(s, [_tensor_value("tf/double_content", rng.random(), types_pb2.DT_DOUBLE, content=True)]),
        lambda s: _event(s, [_tensor_value("tf/no_shape", rng.random(), shape=False)]),
        lambda s: _event(s, [_unpacked_float("tf/unpacked", rng.random())]),
        lambda s: _event(s, [_tensor_value("tf/data_class", rng.random(), metadata=summary_pb2.SummaryMetadata(
            plugin_data=SCALARS.plugin_data, data_class=summary_pb2.DATA_CLASS_SCALAR))]),
        lambda s: _event(s, [summary_pb2.Summary.Value(tag="long/" + "x" * 300, simple_value=1.5),
                             summary_pb2.Summary.Value(tag="long/" + "y" * 301, simple_value=2.5)]),
        # shapes the array path leaves to protobuf
        lambda s: _event(s, [_tensor_value("tf/described", 1.0, metadata=summary_pb2.SummaryMetadata(
            plugin_data=SCALARS.plugin_data, summary_description="a description"))]),
        lambda s: _event(s, [_tensor_value("tf/bare", 3.0, metadata=None)]),
        lambda s: _event(s, [summary_pb2.Summary.Value(tag="toolong/" + "z" * 1100, simple_value=1.0)]),
        lambda s: _event(s, [summary_pb2.Summary.Value(tag="mixed", simple_value=1.0)] + list(histogram.value)),
        lambda s: _event(s, list(histogram.value)),
        lambda s: _event(s, list(protos.text_summary("notes", f"step {s}").value)),
        lambda s: event_pb2.Event(step=s, wall_time=1.7e9, file_version="brain.Event:2"),
        lambda s: event_pb2.Event(step=s, wall_time=1.7e9, graph_def=b"\x0a\x00"),
        lambda s: _event(s, []),
        lambda s: _event(s, [summary_pb2.Summary.Value(tag="train/loss", simple_value=0.0)], wall=0.0),
    ]
    steps = [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 40, -1, -2 ** 40]
    out = []
    for index in range(count):
        step = steps[index % len(steps)] if index % 7 == 0 else index
        out.append(rng.choice(shapes)(step).SerializeToString())
    return out


def _write(path, payloads):
    with open(path, "wb") as handle:
        writer = RecordWriter(handle)
        for payload in payloads:
            writer.write(payload)
        writer.flush()


def _protobuf_rows(payloads):
    """The rows of the records as protobuf alone reads them: the reference."""
    plugin_of = {}
    rows = []
    for payload in payloads:
        rows.extend(tuple(r[:5]) for r in run_reader._event_rows(event_pb2.Event.FromString(payload), plugin_of, ""))
    return rows


def _comparable(rows):
    return [(tag, step, wall, kind, value if kind in ("scalar", "text") else None)
            for tag, step, wall, kind, value in rows]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_record_shape_reads_as_protobuf_reads_it(tmp_path, monkeypatch, seed):
    monkeypatch.setattr(records_io, "BLOCK_BYTES", 4096)  # many blocks: records cut at block ends
    payloads = _mixed_records(seed)
    _write(tmp_path / "events.out.tfevents.1.host", payloads)
    rows = [tuple(r[:5]) for r in reader.read_run(str(tmp_path))]
    assert _comparable(rows) == _comparable(_protobuf_rows(payloads))

    # and the array path did take the scalar shapes it knows
    tags = columns.TagTable()
    taken = {tags.names[i] for block in columns.blocks(str(tmp_path / "events.out.tfevents.1.host"), tags)
             for i in set(block.tag.tolist())}
    assert {"train/loss", "ünï/cödé", "many/0", "tf/a", "tf/b", "tf/content", "tf/double", "tf/double_content",
            "tf/no_shape", "tf/unpacked", "tf/data_class", "long/" + "x" * 300, "long/" + "y" * 301} <= taken
    assert not taken & {"tf/described", "tf/bare", "mixed", "weights/w", "toolong/" + "z" * 1100}

    scalars = reader.scalars(str(tmp_path))
    expected = {}
    for tag, step, _wall, kind, value in rows:
        if kind == "scalar":
            expected.setdefault(tag, []).append((step, value))
    assert scalars == expected
    assert reader.tag_summary(str(tmp_path)) == reader.summarize(reader.read_run(str(tmp_path)))


def test_a_damaged_record_is_skipped_and_the_rest_read(tmp_path):
    payloads = [_event(step, [summary_pb2.Summary.Value(tag="train/loss", simple_value=float(step))])
                .SerializeToString() for step in range(1, 200)]
    damaged = list(payloads)
    damaged[100] = b"\x2a\xff\xff\xff\x0f" + damaged[100][5:]  # a summary longer than the record
    _write(tmp_path / "events.out.tfevents.1.host", damaged)
    steps = [step for step, _ in reader.scalars(str(tmp_path))["train/loss"]]
    assert steps == [s for s in range(1, 200) if s != 101]


def _one_by_one(data):
    starts, lengths, pos = [], [], 0
    while pos + 12 <= len(data):
        length = struct.unpack_from("<Q", data, pos)[0]
        if pos + 16 + length > len(data):
            break
        starts.append(pos + 12)
        lengths.append(length)
        pos += 16 + length
    return starts, lengths


def test_predicted_headers_land_where_the_walk_does(tmp_path, monkeypatch):
    """A periodic run (ten tags a step), with an odd record now and then, step numbers that
    grow a byte, and a torn tail: the predictions give the one-by-one walk's records."""
    monkeypatch.setattr(records_io, "BLOCK_BYTES", 1 << 16)
    rng = random.Random(3)
    payloads = []
    for step in range(1, 20000):
        for tag in range(10 if step % 100 else 3):
            payloads.append(_event(step, [summary_pb2.Summary.Value(tag=f"train/t{tag}", simple_value=1.0)],
                                   wall=1.7e9).SerializeToString())
        if rng.random() < 0.01:
            payloads.append(b"x" * rng.randrange(1, 300))
    path = tmp_path / "events"
    _write(path, payloads)
    with open(path, "ab") as handle:
        handle.write(struct.pack("<Q", 500) + b"\0" * 30)  # a record cut short
    data = path.read_bytes()
    starts, lengths = [], []
    for block, block_starts, block_lengths, base in records_io.record_spans(str(path)):
        starts.extend((base + block_starts).tolist())
        lengths.extend(block_lengths.tolist())
    assert (starts, lengths) == _one_by_one(data)
    assert len(lengths) == len(payloads)


def test_a_hash_collision_between_tags_falls_back_to_exact_grouping(tmp_path, monkeypatch):
    monkeypatch.setattr(columns, "_weights", lambda width: np.zeros(width, np.uint64))
    payloads = [_event(step, [summary_pb2.Summary.Value(tag=tag, simple_value=float(step))]).SerializeToString()
                for step in range(50) for tag in ("train/ab", "train/ba", "val/xy")]
    _write(tmp_path / "events.out.tfevents.1.host", payloads)
    scalars = reader.scalars(str(tmp_path))
    assert sorted(scalars) == ["train/ab", "train/ba", "val/xy"]
    assert all(points == [(s, float(s)) for s in range(50)] for points in scalars.values())


def test_the_scalars_metadata_forms_are_what_tensorboard_and_protobuf_write():
    from tensorboard.plugins.scalar import metadata

    assert metadata.create_summary_metadata(display_name=None, description=None).SerializeToString() \
        == columns.SCALARS_METADATA
    with_class = summary_pb2.SummaryMetadata(plugin_data=SCALARS.plugin_data, data_class=summary_pb2.DATA_CLASS_SCALAR)
    assert with_class.SerializeToString() in columns.SCALARS_METADATA_FORMS


def test_record_steps_are_protobufs_steps(tmp_path):
    """The step index reads each record's step off its bytes: the same steps protobuf reads,
    -1 for a record it cannot parse (a resume keeps those)."""
    payloads = _mixed_records(seed=4, count=500)
    payloads[17] = b"\x10\xff"  # a step varint cut short: not a record protobuf reads
    path = tmp_path / "events"
    _write(path, payloads)
    steps = np.concatenate([columns.record_steps(data, starts, lengths)
                            for data, starts, lengths, _ in records_io.record_spans(str(path))])

    def protobuf_step(payload):
        try:
            return event_pb2.Event.FromString(payload).step
        except Exception:
            return -1

    assert steps.tolist() == [protobuf_step(p) for p in payloads]
    assert steps[17] == -1 and steps.min() < -1  # negative steps read as negative


@pytest.mark.parametrize("length", [2 ** 63, 10 ** 9])
def test_a_damaged_record_length_is_one_warning_and_what_came_before_is_read(tmp_path, length):
    import unitb

    payloads = [_event(step, [summary_pb2.Summary.Value(tag="train/loss", simple_value=float(step))])
                .SerializeToString() for step in range(1, 50)]
    path = tmp_path / "events.out.tfevents.1.host"
    _write(path, payloads)
    data = bytearray(path.read_bytes())
    start = sum(16 + len(p) for p in payloads[:20])
    struct.pack_into("<Q", data, start, length)  # the 21st record's length, its checksum left as it was
    path.write_bytes(bytes(data))
    with pytest.warns(unitb.UnitbWarning, match=f"the record header at byte {start} is damaged") as caught:
        steps = [step for step, _ in reader.scalars(str(tmp_path))["train/loss"]]
    assert steps == list(range(1, 21)) and len(caught) == 1


def test_a_record_longer_than_a_block_is_read_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(records_io, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(records_io, "_LARGEST_READ", 8192)
    text = "x" * 50_000
    payloads = [_event(1, [summary_pb2.Summary.Value(tag="train/loss", simple_value=1.0)]).SerializeToString(),
                _event(1, list(protos.text_summary("notes", text).value)).SerializeToString(),
                _event(2, [summary_pb2.Summary.Value(tag="train/loss", simple_value=2.0)]).SerializeToString()]
    _write(tmp_path / "events.out.tfevents.1.host", payloads)
    rows = reader.read_run(str(tmp_path))
    assert [(r.tag, r.step) for r in rows] == [("train/loss", 1), ("notes", 1), ("train/loss", 2)]
    assert rows[1].value == text
