"""The public resume API: what resumes set aside in a run folder, and putting it back
(``unitb restore``). The code lives in :mod:`unitb.folder.resume`."""
from unitb.folder.resume import *  # noqa: F401,F403
from unitb.folder.resume import __all__  # noqa: F401
