"""The public reading API: a run folder (or URL) read back into rows, scalars and tag summaries.

``unitb.reader`` is the documented path; the code lives in :mod:`unitb.read.run_reader`, next to
the layers it stands on (:mod:`unitb.read.records`, :mod:`unitb.read.columns`).
"""
from unitb.read.run_reader import *  # noqa: F401,F403
from unitb.read.run_reader import __all__  # noqa: F401
