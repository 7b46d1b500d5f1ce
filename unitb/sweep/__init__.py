"""Hyperparameter sweeps where W&B's controller cannot run: a team's W&B sweep configuration, read
and checked here, each trial a unitb run."""

DEFAULT_LOGDIR = "runs"  # where ``unitb sweep`` creates sweeps unless told
# A database sweep's agents beat every HEARTBEAT_SECONDS while a trial runs; a running trial
# whose agent has not beaten for three beats is failed by the next agent that starts a trial,
# and its parameters run again (``retries`` times) as a trial of their own.
HEARTBEAT_SECONDS = 30
