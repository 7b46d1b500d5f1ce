"""The public resume API: what resumes set aside in a run folder, and putting it back
(``unitb restore``). The code lives in :mod:`unitb.folder.set_aside`."""
from unitb.folder.set_aside import *  # noqa: F401,F403
from unitb.folder.set_aside import __all__  # noqa: F401
