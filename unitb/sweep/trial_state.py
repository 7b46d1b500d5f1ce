"""What a trial's run cannot say of itself: that the sweep's pruner stopped it.

The run ends where its process was stopped, and its last metric point looks like any other.
The agent adds one event file to the run's folder, holding ``sweep/pruned_at_step`` at the
step of the prune, so the sweep's HPARAMS table has a column that tells the pruned trials
apart (its cell is empty for a trial that ran to the end) and any reader of the run sees it.
"""
from __future__ import annotations

import os
import time
from typing import Callable

from unitb.files.event_files import event_file_name
from unitb.files.names import TRIAL_STATE_SUFFIX
from unitb.schema import SWEEP_PRUNED_AT_STEP
from unitb.write import protos


def mark_pruned(run_folder: str, step: int, warn: Callable[[str], None]) -> None:
    """Write ``sweep/pruned_at_step = step`` at ``step`` into ``run_folder``; a failure is one line."""
    path = os.path.join(run_folder, event_file_name(time.time(), TRIAL_STATE_SUFFIX))
    try:
        protos.write_events(path, [(protos.scalars_summary([(SWEEP_PRUNED_AT_STEP, step)]), step)])
    except OSError as exc:
        warn(f"unitb sweep: could not mark the run in {run_folder} as pruned ({exc})")
