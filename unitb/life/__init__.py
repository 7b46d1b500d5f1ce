"""A run's life, what every entry point lives through the same way: its options and interval
policy, the run folder opened with its forwarder and mirror, speed, the profiler window, the train
step's values and the user's own, and one close order.
"""
