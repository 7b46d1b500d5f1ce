"""What a custom Keras ``train_step`` returns, for the steps TFCallback logs.

Keras' own ``train_step`` updates the compiled metrics, and TFCallback reads those in one
transfer at the steps it logs (:class:`tf_adapter.measure.MetricsFetch`): the fast path. A
model that overrides ``train_step`` may return values no metric tracks (``{"loss": loss,
"my_metric": m}`` without updating ``compiled_loss``); the metrics then read 0. For such a
model the values come from what the step returned, as Keras' own TensorBoard callback logs
them: Keras hands them to ``on_train_batch_end``, on its dispatch thread when every callback
allows it, already brought to the host. :class:`StepReturns` keeps the newest of them until
the training thread writes the step.
"""
from __future__ import annotations

import threading
from typing import Dict, Mapping, Optional


def overrides_train_step(model) -> bool:
    """Whether ``model``'s class defines its own ``train_step`` (Keras' returns its metrics)."""
    import keras

    return getattr(type(model), "train_step", None) is not getattr(keras.Model, "train_step", None)


class StepReturns:
    """The values the train step returned, by batch index within the epoch; thread-safe."""

    WAIT_SECS = 10.0  # Keras' dispatch thread has the values in hand: this is only a bound

    def __init__(self) -> None:
        self._by_batch: Dict[int, Dict[str, object]] = {}
        self._ready = threading.Condition()

    def put(self, batch: int, logs: Optional[Mapping[str, object]]) -> None:
        with self._ready:
            self._by_batch[int(batch)] = dict(logs or {})
            self._ready.notify_all()

    def take(self, batch: int) -> Optional[Dict[str, object]]:
        """The values of ``batch`` (waiting for Keras' dispatch thread to hand them over), and
        forget every earlier batch; None when they never came."""
        with self._ready:
            self._ready.wait_for(lambda: batch in self._by_batch, timeout=self.WAIT_SECS)
            logs = self._by_batch.get(batch)
            for old in [b for b in self._by_batch if b <= batch]:
                del self._by_batch[old]
            return logs

    def clear(self) -> None:
        with self._ready:
            self._by_batch.clear()
