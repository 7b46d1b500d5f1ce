"""The one place where unitb reaches into torch's and tensorboard's private names.

- ``torch._foreach_norm``: every gradient's norm in one fused kernel launch (a loop over
  ``torch.linalg.vector_norm`` costs one launch per tensor: measured in benchmarks/);
- ``OptimizedModule._orig_mod``: the module ``torch.compile`` wraps (and the path part it adds
  to parameter names);
- ``SummaryWriter._get_file_writer()``: the writer's file writer, opened if needed, for a
  ready-made ``Summary`` (the plugins' protos that are byte-identical on both sides);
- ``SummaryWriter.file_writer`` and its event writer's ``_file_name``: the event file a writer
  holds open (left alone by a resume's clean-up), and dropping it to open a new file;
- tensorboard's ``_AsyncWriterThread``: told apart from other threads, so a full disk does not
  print its raw traceback (the writer raises the error again where the run logger handles it);
- ``distributed_c10d._get_default_store()``: the key-value store the processes of a
  ``torch.distributed`` job share, which carries each node's ``system/*`` figures to the chief
  (``torch_adapter/node_link.py``) without a collective.

Checked against :data:`CHECKED_VERSIONS`; :func:`missing_internals` lists what is absent from
the installed versions, and ``tests/test_library_fences.py`` fails naming it.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch

CHECKED_VERSIONS: Dict[str, Sequence[str]] = {"torch": ("2.13.0",), "tensorboard": ("2.21.0",)}
COMPILED_PART = "_orig_mod"  # the attribute torch.compile keeps the module under


def foreach_norm(tensors: List[torch.Tensor], p: float = 2.0) -> List[torch.Tensor]:
    """Each tensor's p-norm, in one fused launch per device."""
    return list(torch._foreach_norm(tensors, p))


def compiled_inner(model: object) -> Optional[object]:
    """The module a ``torch.compile`` wrapper holds, else None."""
    return getattr(model, COMPILED_PART, None)


def summary_file_writer(writer):
    """A ``SummaryWriter``'s file writer (opened if it was closed), which takes a whole ``Summary``."""
    return writer._get_file_writer()


def open_event_file(writer) -> Optional[str]:
    """The event file a ``SummaryWriter`` holds open, or None."""
    event_writer = getattr(getattr(writer, "file_writer", None), "event_writer", None)
    return getattr(event_writer, "_file_name", None)


def detach_file_writer(writer):
    """Take the file writer off a ``SummaryWriter`` (its next write opens a new event file)
    and return it, for the caller to close."""
    old = getattr(writer, "file_writer", None)
    writer.file_writer = None
    writer.all_writers = None
    return old


def is_event_writer_thread(thread: object) -> bool:
    """Whether ``thread`` is tensorboard's event-file writer thread."""
    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # another tensorboard layout
        return False
    return isinstance(thread, _AsyncWriterThread)


def default_store() -> Optional[object]:
    """The key-value store of the initialised ``torch.distributed`` job, or None."""
    from torch.distributed import distributed_c10d

    getter = getattr(distributed_c10d, "_get_default_store", None)
    return getter() if callable(getter) else None


def missing_internals() -> List[str]:
    """What this module relies on that the installed torch/tensorboard lack."""
    import inspect

    from torch.utils.tensorboard import SummaryWriter

    missing = []
    if not callable(getattr(torch, "_foreach_norm", None)):
        missing.append("torch._foreach_norm")
    try:
        from torch._dynamo.eval_frame import OptimizedModule
        if COMPILED_PART not in inspect.getsource(OptimizedModule.__init__):
            missing.append(f"OptimizedModule.{COMPILED_PART}")
    except (ImportError, OSError, TypeError):
        missing.append("torch._dynamo.eval_frame.OptimizedModule")
    from torch.distributed import distributed_c10d

    if not callable(getattr(distributed_c10d, "_get_default_store", None)):
        missing.append("distributed_c10d._get_default_store")
    if not callable(getattr(SummaryWriter, "_get_file_writer", None)):
        missing.append("SummaryWriter._get_file_writer")
    if "self.file_writer" not in inspect.getsource(SummaryWriter._get_file_writer):
        missing.append("SummaryWriter.file_writer")
    try:
        from tensorboard.summary.writer import event_file_writer
    except ImportError:
        return missing + ["tensorboard.summary.writer.event_file_writer"]
    if not hasattr(event_file_writer, "_AsyncWriterThread"):
        missing.append("tensorboard's _AsyncWriterThread")
    if "self._file_name" not in inspect.getsource(event_file_writer.EventFileWriter.__init__):
        missing.append("EventFileWriter._file_name")
    return missing
