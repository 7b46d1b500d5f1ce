"""A run folder's rules: which folder a run takes, its claim, the step index, and a resume's clean-
up.
"""
