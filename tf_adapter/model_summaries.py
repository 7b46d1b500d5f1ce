"""``tf.summary`` calls inside a Keras model land in the unitb run, at unitb's step.

During ``fit`` with :class:`~tf_adapter.TFCallback`, a default summary writer, step and recording
condition are in place, as Keras' own TensorBoard callback puts them: a ``tf.summary.scalar`` /
``histogram`` / ``image`` call in the model's ``call``, a custom ``train_step`` or another callback
writes into the run folder without a writer of its own.

- **Step**: unitb's step of the iteration being trained (iterations completed + 1), the value of
  a variable the train-step wrapper sets (:class:`~tf_adapter.probe.GradProbe`), so the graph is
  traced once, not per step.
- **When**: on the steps unitb writes its own scalars (``scalar_interval``: flags the callback sets
  before each block, read in the graph), where Keras records on every ``update_freq``-th batch.
  Outside those steps the summary ops are skipped by their ``record_if`` condition.
- **Where**: one extra event file in the run folder (``*.in-model``), opened once per model and run
  folder and kept across fits: Keras keeps its traced train function across fits, and that graph
  holds the writer it was traced with. A fit into another folder retraces once. A model that
  calls no ``tf.summary`` leaves no such file: the writer is opened for each fit (the graph
  must find it when traced) and its empty file removed at the fit's end.
"""
from __future__ import annotations

import contextlib
import os
from typing import List, Optional

from tf_adapter import sink
from unitb.files.names import IN_MODEL_SUFFIX

SUFFIX = IN_MODEL_SUFFIX


class ModelSummaries:
    """The default-writer context of one fit (see the module docstring)."""

    def __init__(self) -> None:
        self._stack: Optional[contextlib.ExitStack] = None
        self._writer = None
        self._probe = None
        self._created: List[str] = []  # the event file this fit's new writer created

    def enter(self, model, probe, folder: str) -> None:
        """Before the first batch of a fit (so before Keras traces its train function)."""
        self.exit()
        writer = getattr(probe, "summary_writer", None)
        self._created = []
        if writer is None or getattr(probe, "summary_folder", None) != folder:
            retrace = writer is not None and probe.summaries_in_graph
            before = set(_own_files(folder))
            writer = sink.open_writer(folder, SUFFIX)
            self._created = sorted(set(_own_files(folder)) - before)
            probe.summary_writer, probe.summary_folder = writer, folder
            if retrace and getattr(model, "train_function", None) is not None:
                model.make_train_function(force=True)  # the old graph holds the old writer

        def recording():
            # Called only where a summary op is made (a trace) or written eagerly: this model
            # does use tf.summary, so its writer and file stay.
            probe.summaries_in_graph = True
            return probe.recording()

        stack = contextlib.ExitStack()
        stack.enter_context(sink.default_writer(writer, probe.summary_step, recording))
        self._stack, self._writer, self._probe = stack, writer, probe

    def exit(self) -> None:
        """At the end of a fit: leave the contexts, write out what was recorded; a writer no
        summary op used is closed and its empty file removed."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        writer, probe, self._writer, self._probe = self._writer, self._probe, None, None
        if writer is None:
            return
        try:
            if probe is not None and not probe.summaries_in_graph:
                writer.close()
                probe.summary_writer = probe.summary_folder = None
                for path in self._created:  # made by this writer a moment ago; holds its header only
                    os.remove(path)
            else:
                writer.flush()
        except Exception:
            pass
        self._created = []


def _own_files(folder: str) -> List[str]:
    try:
        return [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(SUFFIX)]
    except OSError:
        return []
