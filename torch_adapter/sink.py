"""Write unitb records through ``torch.utils.tensorboard.SummaryWriter``."""
from __future__ import annotations

import threading

import numpy as np


def _quiet_writer_thread_errors() -> None:
    """Keep a full or vanished disk from printing a raw traceback from tensorboard's writer
    thread: that thread keeps the exception and the writer raises it again on its next use,
    in the training thread, where the run logger turns it into its one warning (and repairs
    the writer). Other threads' exceptions go to the hook that was there before."""
    previous = threading.excepthook
    if getattr(previous, "unitb_quiet", False):
        return
    try:
        from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread
    except ImportError:  # another tensorboard layout: leave the hook alone
        return

    def hook(args) -> None:
        if isinstance(args.thread, _AsyncWriterThread) and getattr(args.thread, "exception", None) is not None:
            return
        previous(args)

    hook.unitb_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class SummaryWriterSink:
    """Adapts a SummaryWriter (ours or mmengine's TensorboardVisBackend's) to the core Sink."""

    def __init__(self, writer, owns_writer: bool = True):
        _quiet_writer_thread_errors()
        self.writer = writer
        self.owns_writer = owns_writer
        self.logdir = writer.log_dir if hasattr(writer, "log_dir") else writer.get_logdir()

    def open_files(self) -> list:
        """Event files this writer holds open (left alone by the resume clean-up)."""
        writer = getattr(self.writer, "file_writer", None)
        event_writer = getattr(writer, "event_writer", None)
        name = getattr(event_writer, "_file_name", None)
        return [name] if name else []

    def reopen(self) -> None:
        """Start a new event file (after the directory vanished or the disk filled up).

        For a writer we do not own (mmengine's), only its file writer is reset: torch
        recreates it on the next record, which repairs mmengine's LoggerHook scalars too.
        """
        old = getattr(self.writer, "file_writer", None)
        self.writer.file_writer = None
        self.writer.all_writers = None
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

    def write_summary(self, summary, step: int) -> None:
        self.writer._get_file_writer().add_summary(summary, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        if self.owns_writer:
            self.writer.close()
        else:
            self.writer.flush()
