"""Hyperparameter sweeps where W&B's controller cannot run: a team's W&B sweep configuration, read
and checked here, each trial a unitb run."""
