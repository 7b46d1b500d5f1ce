"""Summary protos for the plugins whose payload is identical on both sides.

The custom-scalars layout, the hparams session and the config text are built here from
tensorboard's own protos and written as raw ``Summary`` messages by each sink, so the two
frameworks emit byte-identical plugin data. Only ``tensorboard.compat.proto`` and plugin
metadata modules are used: tensorboard's convenience helpers for custom scalars import
TensorFlow, which must never be loaded into a PyTorch process by unitb.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from unitb.files.tensor_proto import tensor_proto


def custom_scalars_summary(layout: Dict[str, List[Dict[str, Any]]]):
    """A ``Summary`` proto holding the custom-scalars layout."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.custom_scalar import layout_pb2, metadata

    categories = []
    for title, charts in layout.items():
        chart_pbs = [
            layout_pb2.Chart(title=str(chart["title"]),
                             multiline=layout_pb2.MultilineChartContent(tag=list(chart["tags"])))
            for chart in charts
        ]
        categories.append(layout_pb2.Category(title=title, chart=chart_pbs))
    payload = layout_pb2.Layout(category=categories).SerializeToString()
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.CONFIG_SUMMARY_TAG, metadata=metadata.create_summary_metadata(),
                      tensor=tensor_proto(payload))
    return summary


def hparams_summaries(hparams: Mapping[str, object]):
    """The hparams session-start ``Summary`` proto. No experiment proto: without one,
    TensorBoard joins the hparams of every run into its columns and takes the runs' scalars
    as metrics, the same for every run (see :mod:`unitb.write.hparams`)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    def wrap(tag: str, data) -> object:
        summary = summary_pb2.Summary()
        summary.value.add(tag=tag, metadata=hparams_metadata(data), tensor=null_tensor())
        return summary

    session = plugin_data_pb2.SessionStartInfo(group_name="")
    for key in sorted(hparams):
        value = hparams[key]
        if isinstance(value, bool):
            session.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            session.hparams[key].number_value = float(value)
        else:
            session.hparams[key].string_value = str(value)
    return [wrap(HPARAMS_SESSION_START_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=session))]


def experiment_summary(columns: Mapping[str, "Sequence[object]"], metrics: "Sequence[str]",
                       shown: "Sequence[str]" = (), labels: Optional[Mapping[str, str]] = None):
    """The hparams plugin's experiment ``Summary``: the hyperparameter columns (each with the
    values the runs have, so the tab can filter by them) and the metric columns the HPARAMS
    tab lists. The tab ticks the columns declared ``differs`` first: ``shown`` (see
    :data:`unitb.write.hparams.SHOWN`). ``labels``: a column's header where its name alone could
    be read two ways (the table shows it; the runs' values stay keyed by the name)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from google.protobuf import struct_pb2

    experiment = api_pb2.Experiment(time_created_secs=time.time())
    for name, values in columns.items():
        info = experiment.hparam_infos.add(name=name, differs=name in shown, display_name=(labels or {}).get(name, ""))
        if values and all(isinstance(v, bool) for v in values):
            info.type = api_pb2.DATA_TYPE_BOOL
        elif values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            info.type = api_pb2.DATA_TYPE_FLOAT64
        else:
            info.type = api_pb2.DATA_TYPE_STRING
            values = [str(v) for v in values]
        listed = struct_pb2.ListValue()
        for value in values:
            listed.values.add().CopyFrom(_struct_value(value))
        info.domain_discrete.CopyFrom(listed)
    for tag in metrics:
        experiment.metric_infos.add(name=api_pb2.MetricName(group="", tag=tag),
                                    display_name=(labels or {}).get(tag, tag))
    summary = summary_pb2.Summary()
    summary.value.add(tag=HPARAMS_EXPERIMENT_TAG, tensor=null_tensor(),
                      metadata=hparams_metadata(plugin_data_pb2.HParamsPluginData(experiment=experiment)))
    return summary


# The hparams plugin's names and metadata, as its ``metadata`` module makes them: that module
# imports ``tensor_util`` and with it tensorboard's TensorFlow stub (see unitb.files.tensor_proto).
HPARAMS_EXPERIMENT_TAG = "_hparams_/experiment"
HPARAMS_SESSION_START_TAG = "_hparams_/session_start_info"


def hparams_metadata(data):
    """The ``SummaryMetadata`` of an hparams-plugin summary holding ``data`` (version 0)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = plugin_data_pb2.HParamsPluginData()
    content.CopyFrom(data)
    content.version = 0
    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name="hparams", content=content.SerializeToString()))


def null_tensor():
    """The length-0 float vector the hparams plugin's summaries carry (they hold only metadata)."""
    import numpy as np

    return tensor_proto(np.zeros((0,), np.float32))


def _struct_value(value: object):
    from google.protobuf import struct_pb2

    item = struct_pb2.Value()
    if isinstance(value, bool):
        item.bool_value = value
    elif isinstance(value, (int, float)):
        item.number_value = float(value)
    else:
        item.string_value = str(value)
    return item


def write_events(path: str, summaries: "Sequence[tuple]") -> None:
    """A small event file of ``(summary, step)`` records, written whole (no writer thread, no
    TensorFlow): the version header, then one event per summary."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    with open(path + ".tmp", "wb") as handle:
        records = RecordWriter(handle)
        records.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        for summary, step in summaries:
            records.write(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary).SerializeToString())
    os.replace(path + ".tmp", path)


def text_summary(tag: str, text: str):
    """A text-plugin ``Summary`` (torch's ``add_text`` would rename the tag)."""
    import numpy as np
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.text import metadata

    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(display_name=None, description=None),
                      tensor=tensor_proto(np.array(text.encode("utf-8"), dtype=np.object_)))
    return summary


_SCALAR_METADATA = None


def scalars_summary(values: "Sequence[tuple]"):
    """One ``Summary`` holding many scalars ``[(tag, value), ...]`` in the tensor form that
    ``tf.summary.scalar`` writes (float32 tensor, scalars plugin metadata)."""
    global _SCALAR_METADATA
    from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorboard.plugins.scalar import metadata

    if _SCALAR_METADATA is None:
        _SCALAR_METADATA = metadata.create_summary_metadata(display_name=None, description=None)
    summary = summary_pb2.Summary()
    shape = tensor_shape_pb2.TensorShapeProto()
    for tag, value in values:
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=[float(value)])
        summary.value.add(tag=tag, metadata=_SCALAR_METADATA, tensor=tensor)
    return summary


HISTOGRAM_BUCKETS = 30  # as tf.summary.histogram


def histogram_buckets(values, bucket_count: int = HISTOGRAM_BUCKETS):
    """``[k, 3]`` float64 rows ``[left, right, count]`` exactly as ``tf.summary.histogram``
    buckets them (equal widths over [min, max]; a constant array puts every value in the last
    bucket), computed with ``np.bincount``: no TensorFlow op, no N x k one-hot matrix."""
    import numpy as np

    data = np.asarray(values, dtype=np.float64).reshape(-1)
    if data.size == 0:
        return np.zeros((bucket_count, 3))
    low, high = float(data.min()), float(data.max())
    if high == low:
        counts = np.zeros(bucket_count)
        counts[-1] = data.size
        return np.stack([np.full(bucket_count, low), np.full(bucket_count, low), counts], axis=1)
    width = (high - low) / bucket_count
    index = np.minimum(np.floor((data - low) / width).astype(np.int64), bucket_count - 1)
    counts = np.bincount(index, minlength=bucket_count).astype(np.float64)
    left = low + width * np.arange(bucket_count)
    return np.stack([left, left + width, counts], axis=1)


def histogram_summary(tag: str, values):
    """A histograms-plugin ``Summary`` in the tensor form ``tf.summary.histogram`` writes."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.histogram import metadata

    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(display_name=None, description=None),
                      tensor=tensor_proto(histogram_buckets(values)))
    return summary


PR_THRESHOLDS = 201  # the pr_curves plugin's default


def pr_curve_summary(tag: str, labels, scores, num_thresholds: int = PR_THRESHOLDS):
    """A pr_curves-plugin ``Summary``: true/false positive/negative counts, precision and recall at
    ``num_thresholds`` evenly spaced score thresholds in [0, 1] — the same numbers as
    ``tensorboard.plugins.pr_curve.summary.pb``, computed in numpy (that helper imports TensorFlow).
    ``labels``: ground truth (bool), ``scores``: in [0, 1], same shape."""
    import numpy as np
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.pr_curve import metadata

    truth = np.asarray(labels, dtype=bool).reshape(-1).astype(float)
    score = np.asarray(scores, dtype=np.float32).reshape(-1)
    buckets = np.int32(np.floor(score * (num_thresholds - 1)))
    tp_buckets, _ = np.histogram(buckets, bins=num_thresholds, range=(0, num_thresholds - 1), weights=truth)
    fp_buckets, _ = np.histogram(buckets, bins=num_thresholds, range=(0, num_thresholds - 1), weights=1.0 - truth)
    tp = np.cumsum(tp_buckets[::-1])[::-1]
    fp = np.cumsum(fp_buckets[::-1])[::-1]
    tn, fn = fp[0] - fp, tp[0] - tp
    precision = tp / np.maximum(1e-7, tp + fp)
    recall = tp / np.maximum(1e-7, tp + fn)
    data = np.float32(np.stack((tp, fp, tn, fn, precision, recall)))
    summary = summary_pb2.Summary()
    summary.value.add(tag=f"{tag}/pr_curves", tensor=tensor_proto(data),
                      metadata=metadata.create_summary_metadata(display_name=tag, description="",
                                                                num_thresholds=num_thresholds))
    return summary
