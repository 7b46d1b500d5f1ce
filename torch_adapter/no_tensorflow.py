"""A PyTorch run never loads TensorFlow just to write its event files.

tensorboard's writers (``torch.utils.tensorboard.SummaryWriter``, and so mmengine's
``TensorboardVisBackend``) reach the file system through ``tensorboard.compat.tf.io.gfile``.
``tensorboard.compat.tf`` is a lazy module: the first attribute read on it imports TensorFlow
when TensorFlow is installed, which costs a PyTorch process about 2.6 s and 500 MB (measured
in ``benchmarks/``), although the writers use nothing of it but ``io``.

:func:`keep_tensorflow_unloaded` hands that lazy module tensorboard's own pure-Python ``io``
(its TensorFlow stub's, which the writers use wherever TensorFlow is absent) before anything
reads it. The lazy module answers ``io`` from its ``__dict__`` without loading anything; any
other attribute still loads the real TensorFlow, whose ``io`` then replaces the stub's — so a
process that uses TensorFlow on purpose (``tf.summary``, Keras, ``unitb.TFCallback``) works
as before. Nothing changes when TensorFlow is already imported. ``tests/test_import.py``
checks both sides, and fails if a tensorboard release changes the lazy module.
"""
from __future__ import annotations

import sys


def keep_tensorflow_unloaded() -> bool:
    """Give ``tensorboard.compat.tf`` the stub's ``io`` unless TensorFlow is already loaded or
    the lazy module was resolved; True when it did."""
    if "tensorflow" in sys.modules:
        return False  # already paid for: the real one serves
    try:
        import tensorboard.compat as compat
        from tensorboard.compat.tensorflow_stub import io as stub_io
    except ImportError:  # pragma: no cover - another tensorboard layout: leave it alone
        return False
    lazy = compat.tf
    if "io" in vars(lazy):
        return False  # resolved (or handed ``io``) before
    vars(lazy)["io"] = stub_io
    return True
