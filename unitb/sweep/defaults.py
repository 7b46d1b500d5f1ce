"""What a sweep does unless told: named once, where both the ``unitb sweep`` arguments and the
sweep machinery read them, so building the command's parser loads no sweep code."""
from __future__ import annotations

DEFAULT_LOGDIR = "sweeps"  # where ``unitb sweep`` creates sweeps: apart from the runs a script writes to runs/
# Agents beat every HEARTBEAT_SECONDS while a trial runs; a running trial whose agent has not
# beaten for GRACE_BEATS beats is failed by the next agent that looks, and its parameters run
# again (``retries`` times) as a trial of their own.
HEARTBEAT_SECONDS = 30
GRACE_BEATS = 3
