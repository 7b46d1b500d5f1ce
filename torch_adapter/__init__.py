"""unitb's PyTorch adapter: the mmengine hook and a logger for plain loops.

Importing this package registers ``EnhancedTensorBoardHook`` in mmengine's HOOKS registry
(``custom_imports = dict(imports=['torch_adapter'])``) when mmengine is installed.
"""
from torch_adapter.no_tensorflow import keep_tensorflow_unloaded

keep_tensorflow_unloaded()  # before any SummaryWriter (ours or mmengine's) touches the file system

from torch_adapter.logger import TorchLogger  # noqa: E402

try:
    from torch_adapter.hook import EnhancedTensorBoardHook
except ImportError as _exc:  # mmengine is optional for plain PyTorch users
    _HOOK_ERROR = _exc

    def __getattr__(name):
        if name == "EnhancedTensorBoardHook":
            raise ImportError(f"EnhancedTensorBoardHook needs mmengine: {_HOOK_ERROR}")
        raise AttributeError(name)

__all__ = ["TorchLogger", "EnhancedTensorBoardHook"]
