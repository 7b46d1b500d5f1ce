"""Write unitb records through ``torch.utils.tensorboard.SummaryWriter``."""
from __future__ import annotations

import numpy as np


class SummaryWriterSink:
    """Adapts a SummaryWriter (ours or mmengine's TensorboardVisBackend's) to the core Sink."""

    def __init__(self, writer, owns_writer: bool = True):
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
