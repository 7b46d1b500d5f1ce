"""``python -m unitb``: the ``unitb`` command, where the script is not on PATH."""
import sys

from unitb.commands.cli import main

sys.exit(main())
