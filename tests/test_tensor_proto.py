"""unitb's TensorProto payloads are byte for byte tensorboard's ``make_tensor_proto``, and read
back as its ``make_ndarray`` reads them (unitb builds its own to keep tensorboard's TensorFlow
stub, and the boto3 import it makes, out of the first fit of a process)."""
import numpy as np
import pytest
from tensorboard.util import tensor_util

from unitb.files.tensor_proto import ndarray_of, tensor_proto

PAYLOADS = [
    b"\x00layout bytes\xff",
    np.array("a config text, ünïcode".encode("utf-8"), dtype=np.object_),
    np.array([b"one", b"two", b""], dtype=np.object_),
    np.random.default_rng(0).random((30, 3)),  # histogram buckets, float64
    np.float32(np.random.default_rng(1).random((6, 201))),  # PR-curve data
    np.array([2.5], np.float32),
    np.array(7.25),
    np.array([[3]], np.int32),
    np.arange(5, dtype=np.int64),
    np.array([1.5], np.float16),
    np.zeros((0, 3)),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: f"{type(p).__name__}-{getattr(p, 'dtype', '')}")
def test_payloads_are_tensorboards_bytes_and_read_back_the_same(payload):
    ours = tensor_proto(payload)
    assert ours.SerializeToString() == tensor_util.make_tensor_proto(payload).SerializeToString()
    expected = tensor_util.make_ndarray(ours)
    got = ndarray_of(ours)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tolist() == expected.tolist()


def test_a_value_listed_once_fills_the_shape_as_tensorflow_reads_it():
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2

    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=3)])
    for proto in (tensor_pb2.TensorProto(dtype=1, tensor_shape=shape, float_val=[1.5]),
                  tensor_pb2.TensorProto(dtype=7, tensor_shape=shape, string_val=[b"x"]),
                  tensor_pb2.TensorProto(dtype=9, tensor_shape=shape, int64_val=[4]),
                  tensor_pb2.TensorProto(dtype=19, tensor_shape=shape, half_val=[15360])):
        assert ndarray_of(proto).tolist() == tensor_util.make_ndarray(proto).tolist()


def test_hparams_summaries_carry_the_plugins_own_metadata_and_null_tensor():
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    from unitb.write import protos

    data = plugin_data_pb2.HParamsPluginData(session_start_info=plugin_data_pb2.SessionStartInfo(group_name=""))
    assert protos.null_tensor().SerializeToString() == metadata.NULL_TENSOR.SerializeToString()
    assert (protos.hparams_metadata(data).SerializeToString()
            == metadata.create_summary_metadata(data).SerializeToString())
    assert (protos.HPARAMS_EXPERIMENT_TAG, protos.HPARAMS_SESSION_START_TAG) == (
        metadata.EXPERIMENT_TAG, metadata.SESSION_START_INFO_TAG)
