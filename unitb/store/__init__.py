"""Runs in object storage: the mirror that uploads a spool, opening a URL run, and pull/push."""
