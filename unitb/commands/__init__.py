"""The `unitb` command line and the demo."""
