"""The same run in W&B and MLflow: a forwarder that follows the event files, and one module per
backend.
"""
