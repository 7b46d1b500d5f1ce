"""The same run in W&B, MLflow or a backend of your own: a forwarder that follows the event
files, a registry of backends by name, and one module per built-in backend.

A backend of your own is one class and one registration (:mod:`unitb.backends.base`)::

    from unitb.backends import Backend, register_backend
"""
from unitb.backends.base import Backend, register_backend

__all__ = ["Backend", "register_backend"]
