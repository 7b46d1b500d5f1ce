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

# TensorFlow's DataType numbers (tensorboard/compat/proto/types.proto).
_DATA_TYPES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3,
               np.dtype(np.int64): 9, np.dtype(np.float16): 19}
_STRING = 7
# The repeated field a one-element tensor of each type keeps its value in.
_ONE_VALUE = {1: "float_val", 2: "double_val", 3: "int_val", 9: "int64_val", 19: "half_val"}


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
    data_type = _DATA_TYPES.get(array.dtype)
    if data_type is None:
        raise TypeError(f"no TensorProto form here for dtype {array.dtype}")
    proto = tensor_pb2.TensorProto(dtype=data_type, tensor_shape=shape)
    if array.size > 1:
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    elif data_type == 19:  # half: its 16 bits as an integer
        getattr(proto, _ONE_VALUE[data_type]).extend(array.reshape(-1).view(np.uint16).tolist())
    else:
        getattr(proto, _ONE_VALUE[data_type]).extend(array.reshape(-1).tolist())
    return proto


_NUMPY_TYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 19: np.float16}
_VALUE_LISTS = {1: "float_val", 2: "double_val", 3: "int_val", 9: "int64_val", 10: "bool_val", 19: "half_val"}


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
    numpy_type = _NUMPY_TYPES.get(proto.dtype)
    if numpy_type is None:
        from tensorboard.util import tensor_util

        return tensor_util.make_ndarray(proto)
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=numpy_type).copy().reshape(shape)
    listed = getattr(proto, _VALUE_LISTS[proto.dtype])
    if proto.dtype == 19:  # half: each value's 16 bits as an integer
        values = np.fromiter(listed, dtype=np.uint16).view(np.float16)
    else:
        values = np.fromiter(listed, dtype=numpy_type)
    if values.size == 1:
        return np.repeat(values, count).reshape(shape)
    return values.reshape(shape)
