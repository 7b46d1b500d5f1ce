"""Write unitb records through ``torch.utils.tensorboard.SummaryWriter``."""
from __future__ import annotations

import threading

import numpy as np

from torch_adapter import torch_internals


def _quiet_writer_thread_errors() -> None:
    """Keep a full or vanished disk from printing a raw traceback from tensorboard's writer
    thread: that thread keeps the exception and the writer raises it again on its next use,
    in the training thread, where the run logger turns it into its one warning (and repairs
    the writer). Other threads' exceptions go to the hook that was there before."""
    previous = threading.excepthook
    if getattr(previous, "unitb_quiet", False):
        return

    def hook(args) -> None:
        if torch_internals.is_event_writer_thread(args.thread) and getattr(args.thread, "exception", None) is not None:
            return
        previous(args)

    hook.unitb_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class SummaryWriterSink:
    """Adapts a SummaryWriter (ours or mmengine's TensorboardVisBackend's) to the core Sink.
    The only torch-side code that opens a ``SummaryWriter`` or calls one."""

    @classmethod
    def open(cls, folder: str) -> "SummaryWriterSink":
        """A new ``SummaryWriter`` of our own in ``folder``."""
        from torch.utils.tensorboard import SummaryWriter

        return cls(SummaryWriter(folder), owns_writer=True)

    def __init__(self, writer, owns_writer: bool = True):
        _quiet_writer_thread_errors()
        self.writer = writer
        self.owns_writer = owns_writer
        self.logdir = writer.log_dir if hasattr(writer, "log_dir") else writer.get_logdir()

    def open_files(self) -> list:
        """Event files this writer holds open (left alone by the resume clean-up)."""
        name = torch_internals.open_event_file(self.writer)
        return [name] if name else []

    def reopen(self) -> None:
        """Start a new event file (after the directory vanished or the disk filled up).

        For a writer we do not own (mmengine's), only its file writer is reset: torch
        recreates it on the next record, which repairs mmengine's LoggerHook scalars too.
        """
        old = torch_internals.detach_file_writer(self.writer)
        if old is not None:
            try:
                old.close()
            except Exception:
                pass  # the old file's thread may have died on the very error we recover from

    def write_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        self.writer.add_histogram(tag, values, step)

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def write_graph(self, module, inputs) -> None:
        """The GRAPHS tab: ``module`` traced (``torch.jit.trace``) on ``inputs``, without gradients."""
        import torch

        with torch.no_grad():
            self.writer.add_graph(module, inputs)

    def write_summary(self, summary, step: int) -> None:
        torch_internals.summary_file_writer(self.writer).add_summary(summary, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        if self.owns_writer:
            self.writer.close()
        else:
            self.writer.flush()
