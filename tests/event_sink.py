"""A framework-free Sink over tensorboard's own EventFileWriter (scalars and raw summaries),
for exercising the core without torch or TensorFlow in the process."""
from __future__ import annotations

import time

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class EventFileSink:
    def __init__(self, logdir: str, delay: float = 0.0):
        """``delay``: seconds each histogram/image write takes (a slow disk)."""
        self.logdir = logdir
        self.writer = EventFileWriter(logdir, flush_secs=3600)  # only our flushes count
        self.delay = delay

    def _add(self, summary, step):
        self.writer.add_event(event_pb2.Event(step=step, wall_time=time.time(), summary=summary))

    def write_scalar(self, tag, value, step):
        self._add(summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]), step)

    def write_histogram(self, tag, values, step):
        time.sleep(self.delay)
        histo = summary_pb2.HistogramProto(min=float(values.min()), max=float(values.max()), num=float(values.size))
        self._add(summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)]), step)

    def write_image(self, tag, image, step):
        time.sleep(self.delay)

    def write_summary(self, summary, step):
        self._add(summary, step)

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()
