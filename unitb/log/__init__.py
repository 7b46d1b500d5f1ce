"""What every entry point shares: options, interval policy, the run folder opened with its
forwarder and mirror, speed, profiler window, the train step's values and the user's own.
"""
