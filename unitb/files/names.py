"""The names unitb gives its own files in a run folder, spelled once.

Each is a hidden ``.unitb-*`` name, so TensorBoard and users' globs pass them by. Whoever
copies, lists or cleans a run folder (the mirror, ``unitb pull``, a resume) reads them here.
"""
from __future__ import annotations

CLAIM = ".unitb-claim"  # the writer that holds the folder (unitb.folder.claim)
ENDED = ".unitb-ended.json"  # written as a writer closes, removed as one opens: the run ended cleanly
STEP_INDEX = ".unitb-steps.json"  # the highest step of each event file (unitb.folder.step_index)
RESUME_JOURNAL = ".unitb-resume.json"  # a resume's clean-up in progress (unitb.folder.set_aside)
COMPACT_TMP = ".unitb-compact.tmp"  # the event file a resume compacts, before it is put in place
REMOVED = ".unitb-removed"  # what resumes set aside, to restore (unitb.folder.set_aside)
BACKENDS_STATE = ".unitb-backends.json"  # what W&B/MLflow hold of the run (unitb.backends.forwarder)
MIRROR_STATE = ".unitb-mirror.json"  # what the store holds of a URL run (unitb.store.mirror)
RESUMED_MARK = ".unitb-resumed-"  # in the name of the event file a resume compacted
PULL_PREFIX = ".unitb-pull-"  # a file `unitb pull` is still downloading
# The experiment summary ``unitb hparams`` writes below a log root: read by TensorBoard's HPARAMS
# tab, part of no run; the folder is the name TensorBoard lists it under.
EXPERIMENT_SUFFIX = ".unitb-experiment"
EXPERIMENT_FOLDER = "hparams-columns"
EXPERIMENT_LOCK = ".unitb-experiment.lock"  # held while a log root's summary is replaced
# The second event file a Keras fit writes for tf.summary calls inside the model
# (tf_adapter.model_summaries); named here so the core (the mirror) can tell it apart.
IN_MODEL_SUFFIX = ".in-model"
# A sweep (unitb.sweep): its folder holds the trials' run folders beside these.
SWEEP_FILE = ".unitb-sweep.json"  # which study and storage the folder's sweep is
SWEEP_JOURNAL = ".unitb-sweep-journal.log"  # the embedded Optuna storage (a journal file)
TRIAL_ARGS = ".unitb-trial-args.json"  # the trial's parameters for ${args_json_file}
TRIAL_STDOUT = ".unitb-trial-stdout.log"  # what the trial's process printed
TRIAL_STDERR = ".unitb-trial-stderr.log"
TRIAL_RUNS = ".unitb-trial-runs.json"  # run folders a trial's entry points chose outside its folder
ALERTS_FOLDER = ".unitb-alerts"  # a run's alerts, each with the channels that took it (unitb.life.alert_delivery)
TRIAL_STATE_SUFFIX = ".unitb-trial-state"  # the event file an agent adds to a pruned trial's run
TRIAL_NONFINITE = ".unitb-trial-nonfinite.json"  # the first non-finite value of each tag a trial's run left out
# The index of a logdir's runs that `unitb query` and `unitb.runs` keep beside them (unitb.query.index).
INDEX_FOLDER = ".unitb-index"
