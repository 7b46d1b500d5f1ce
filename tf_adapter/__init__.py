"""unitb's TensorFlow adapter: Keras callback, custom-loop logger, checkpoint helper."""
from tf_adapter.callback import TFCallback
from tf_adapter.checkpoint import CheckpointManager
from tf_adapter.logger import TFLogger

__all__ = ["TFCallback", "TFLogger", "CheckpointManager"]
