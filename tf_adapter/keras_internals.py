"""The one place where unitb reaches into Keras' private names.

Keras tells callbacks neither how many micro-batches an optimizer counted nor what the update
applied under gradient accumulation, and gives no hook on the gradients' all-reduce:

- ``optimizer._learning_rate``: the schedule a learning rate comes from, evaluated at the step
  the update was made (``learning_rate`` gives its value now);
- ``optimizer._iterations``: micro-batches counted (``iterations`` counts updates);
- ``optimizer._accumulated_gradients`` and ``_get_variable_index``: the sum a gradient-accumulating
  optimizer applies at its update step (the norm logged is that of the update);
- ``optimizer._all_reduce_sum_gradients``: wrapped under several replicas, so the norm measured is
  that of the summed gradients the update applies.

Checked against :data:`CHECKED_VERSIONS`; :func:`missing_internals` lists what an optimizer of
the installed Keras lacks, and ``tests/test_library_fences.py`` fails naming it.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

CHECKED_VERSIONS: Dict[str, Sequence[str]] = {"keras": ("3.15.1",)}


def learning_rate_source(optimizer):
    """What the optimizer computes its learning rate from: the schedule itself where it has one
    (``_learning_rate``; the public ``learning_rate`` is its value at the current step)."""
    source = getattr(optimizer, "_learning_rate", None)
    return source if source is not None else getattr(optimizer, "learning_rate", None)


def micro_batches(optimizer):
    """The variable counting the optimizer's micro-batches (its updates where it keeps no
    separate count)."""
    variable = getattr(optimizer, "_iterations", None)
    return variable if variable is not None else optimizer.iterations


def accumulated(optimizer, variables: Sequence) -> List:
    """The gradients a gradient-accumulating optimizer has summed so far, one per variable."""
    return [optimizer._accumulated_gradients[optimizer._get_variable_index(v)] for v in variables]


def gradient_reducer(optimizer) -> Optional[Callable]:
    """The optimizer's all-reduce of gradients across replicas, or None."""
    return getattr(optimizer, "_all_reduce_sum_gradients", None)


def replace_gradient_reducer(optimizer, reducer: Callable) -> None:
    """Have the optimizer all-reduce its gradients through ``reducer``."""
    optimizer._all_reduce_sum_gradients = reducer


def missing_internals() -> List[str]:
    """What this module relies on that an optimizer of the installed Keras lacks."""
    import keras

    optimizer = keras.optimizers.SGD(0.1, gradient_accumulation_steps=2)
    optimizer.build([keras.Variable([1.0])])
    names = ("_learning_rate", "_iterations", "_accumulated_gradients", "_get_variable_index",
             "_all_reduce_sum_gradients")
    return [f"optimizer.{name}" for name in names if not hasattr(optimizer, name)]
