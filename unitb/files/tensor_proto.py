"""``TensorProto`` payloads for the summaries unitb builds, without ``tensorboard.util.tensor_util``.

That helper pulls in tensorboard's TensorFlow stub, whose file layer imports boto3 and fsspec
when they are installed: ~70 ms on the first summary of a process, paid inside the first
``fit()``. The payloads unitb writes are few (a byte string, a string scalar, float arrays), and
these are built exactly as ``make_tensor_proto`` builds them — the same bytes, checked by
``tests/test_tensor_proto.py`` — so event files do not change.
"""
from __future__ import annotations

from typing import Union

import numpy as np

# TensorFlow's DataType numbers (tensorboard/compat/proto/types.proto): the numpy type of each,
# and the repeated field a tensor of it lists its values in when it has no ``tensor_content``.
_NUMERIC = {1: (np.float32, "float_val"), 2: (np.float64, "double_val"), 3: (np.int32, "int_val"),
            9: (np.int64, "int64_val"), 10: (np.bool_, "bool_val"), 19: (np.float16, "half_val")}
_STRING = 7
_HALF = 19  # listed as each value's 16 bits, as an integer
# The numeric types unitb writes (a bool tensor is only read).
_DATA_TYPE_OF = {np.dtype(kind): number for number, (kind, _) in _NUMERIC.items() if kind is not np.bool_}


def tensor_proto(value: Union[bytes, str, np.ndarray, np.generic]):
    """``value`` as ``tensor_util.make_tensor_proto`` writes it: a byte string (or an object
    array of them) as ``DT_STRING``; a numeric array as its dtype, with its bytes in
    ``tensor_content`` (a single element in the type's value list, as TensorFlow does)."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2

    if isinstance(value, (bytes, str)):
        value = np.array(value if isinstance(value, bytes) else value.encode("utf-8"), dtype=np.object_)
    array = np.asarray(value)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in array.shape])
    if array.dtype == np.object_ or array.dtype.kind == "S":
        proto = tensor_pb2.TensorProto(dtype=_STRING, tensor_shape=shape)
        proto.string_val.extend([item if isinstance(item, bytes) else str(item).encode("utf-8")
                                 for item in array.reshape(-1).tolist()])
        return proto
    data_type = _DATA_TYPE_OF.get(array.dtype)
    if data_type is None:
        raise TypeError(f"no TensorProto form here for dtype {array.dtype}")
    proto = tensor_pb2.TensorProto(dtype=data_type, tensor_shape=shape)
    if array.size > 1:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
        return proto
    flat = array.reshape(-1)
    getattr(proto, _NUMERIC[data_type][1]).extend((flat.view(np.uint16) if data_type == _HALF else flat).tolist())
    return proto


def ndarray_of(proto) -> np.ndarray:
    """A ``TensorProto`` as ``tensor_util.make_ndarray`` reads it, for the types event files
    hold (floats, ints, bools, strings); any other type is left to that helper. A value listed
    once fills the whole shape, as TensorFlow writes a constant."""
    shape = [d.size for d in proto.tensor_shape.dim]
    count = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == _STRING:
        strings = list(proto.string_val)
        if len(strings) == 1:
            return np.repeat(np.array(strings[0], dtype=np.object_), count).reshape(shape)
        return np.array(strings, dtype=np.object_).reshape(shape)
    if proto.dtype not in _NUMERIC:
        from tensorboard.util import tensor_util

        return tensor_util.make_ndarray(proto)
    numpy_type, field = _NUMERIC[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=numpy_type).copy().reshape(shape)
    listed = getattr(proto, field)
    if proto.dtype == _HALF:
        values = np.fromiter(listed, dtype=np.uint16).view(np.float16)
    else:
        values = np.fromiter(listed, dtype=numpy_type)
    if values.size == 1:
        return np.repeat(values, count).reshape(shape)
    return values.reshape(shape)
