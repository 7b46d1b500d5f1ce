"""A sweep as it is kept: its folder, and the Optuna study that holds its trials.

``unitb sweep create`` makes ``<logdir>/<id>/``: the trials' run folders go there
(``trial-000``, ``trial-001``…), so TensorBoard pointed at it shows the sweep and nothing else.
By default the study is an Optuna journal file in that folder (``.unitb-sweep-journal.log``),
which many agents share on one machine or on a shared file system; ``--storage URL`` puts it in
a database instead. Either way the study itself keeps what every agent needs — the
configuration as written, the sweep's seed (a grid's agents must share it) and the folder —
so an agent needs nothing but the id and, with a database, its URL. ``.unitb-sweep.json`` in
the folder names the study and the storage, so an agent given the folder finds both.

Optuna is imported only here and in the modules below ``unitb.sweep``, when a sweep is used.
"""
from __future__ import annotations

import os
import random
import re
import shlex
import string
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from unitb.files import json_files, storage
from unitb.files.names import SWEEP_FILE, SWEEP_JOURNAL
from unitb.schema import SWEEP_PRUNED_AT_STEP
from unitb.sweep import journal, space
from unitb.sweep.config import SweepConfig, SweepConfigError, parse
from unitb.sweep.defaults import DEFAULT_LOGDIR, GRACE_BEATS, HEARTBEAT_SECONDS

_ID_LETTERS = string.ascii_lowercase + string.digits
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# What the study keeps of the sweep (Optuna user attributes).
CONFIG_ATTR, SEED_ATTR, FOLDER_ATTR = "unitb.config", "unitb.seed", "unitb.folder"


class SweepNotFound(LookupError):
    """No sweep of that id in that folder or storage."""


class SweepExists(FileExistsError):
    """A sweep of that name is in that storage already (another create may have just made it)."""


@dataclass
class Sweep:
    """One sweep: its id, folder, configuration, seed and the storage its study lives in."""

    ident: str
    folder: str
    config: SweepConfig
    raw: Dict[str, Any]
    seed: int
    storage_url: str

    def storage(self, heartbeat: int = HEARTBEAT_SECONDS, retries: int = 1):
        """An Optuna storage object for this sweep's study (one per agent)."""
        return open_storage(self.storage_url, heartbeat, retries, self.ident)

    def study(self, seed: Optional[int] = None, optuna_storage=None):
        """The study, with the sampler and pruner the configuration names. ``seed``: the
        sampler's; a grid always takes the sweep's own (see :func:`unitb.sweep.space.sampler`)."""
        import optuna

        sampler_seed = self.seed if self.config.method == "grid" or seed is None else seed
        return optuna.load_study(study_name=self.ident, storage=optuna_storage or self.storage(),
                                 sampler=space.sampler(self.config, sampler_seed), pruner=space.pruner(self.config))

    @property
    def in_database(self) -> bool:
        """Whether the study is in a database (whose agents beat a heartbeat), not a journal file."""
        return "://" in self.storage_url

    @property
    def in_store(self) -> bool:
        """Whether the trials' runs go to an object store (``--logdir s3://…``)."""
        return storage.is_url(self.folder)

    def write_summary(self) -> Optional[str]:
        """The HPARAMS experiment of the sweep's folder: its parameters as columns (also where a
        trial lacks one), its metric first, so TensorBoard opens on the sweep as a table. A sweep
        in a store gets it where it is pulled (``unitb hparams``). Returns its path."""
        from unitb.write import hparams

        if self.in_store or self.config.metric is None:
            return None
        names = [p.name for p in self.config.parameters]
        metrics = [self.config.metric.name, SWEEP_PRUNED_AT_STEP]  # the second only where a trial was pruned
        return hparams.write_experiment(self.folder, shared=names, first_metrics=metrics,
                                        swept=[p.name for p in self.config.parameters if p.searched])

    def agent_command(self) -> str:
        """The command that starts one more agent of this sweep, on any host that sees its folder
        (or store) and its database: what ``create`` prints and a stopped ``run`` says."""
        logdir = self.folder.rsplit("/", 1)[0] if self.in_store else os.path.dirname(self.folder)
        words = ["unitb", "sweep", "agent", self.ident]
        if logdir != os.path.abspath(DEFAULT_LOGDIR):
            words += ["--logdir", logdir]
        if self.in_database:
            words += ["--storage", self.storage_url]
        return " ".join(shlex.quote(word) for word in words)

    def trial_folder(self, number: int) -> str:
        """Where trial ``number``'s run goes: a folder, or a URL in the store."""
        name = f"trial-{number:03d}"
        return storage.join(self.folder, name) if self.in_store else os.path.join(self.folder, name)

    def agent_folder(self, number: int) -> str:
        """A local folder for what the agent keeps of trial ``number`` (its arguments file, its
        output, where its runs are): the trial's own folder, or for a sweep in a store a folder
        in this host's spool."""
        if not self.in_store:
            return self.trial_folder(number)
        return os.path.join(storage.spool_root(), "sweeps", self.ident, f"trial-{number:03d}")


def open_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS, retries: int = 1, ident: str = ""):
    """A journal file's path (anything without ``://``) or a database URL Optuna takes (its
    agents beat every ``heartbeat`` seconds; a dead one's trial runs again ``retries`` times)."""
    import optuna

    if "://" not in url:
        # Optuna's own lock for the journal (a symlink made atomically) holds on shared file systems too.
        return optuna.storages.JournalStorage(journal.backend(url, ident))

    class PatientRDBStorage(optuna.storages.RDBStorage):
        """A beat the database does not take is tried again at the next one: Optuna's
        heartbeat thread would end at the first error and the live trial look dead. While
        ``holds_stale()`` (an agent that has just seen the database away) no trial is stale:
        every caller of the stale check — the agent's, and the one Optuna's ``optimize`` runs
        before each trial — goes through here."""

        holds_stale: Callable[[], bool] = staticmethod(lambda: False)

        def _get_stale_trial_ids(self, study_id: int) -> List[int]:
            return [] if self.holds_stale() else super()._get_stale_trial_ids(study_id)

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                super().record_heartbeat(trial_id)
            except Exception:  # the database away for a while; the agent says so
                pass

    def connect():
        with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna's words since 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return PatientRDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=max(GRACE_BEATS * heartbeat, 2),
                heartbeat_stale_trial_callback=retry_elsewhere(retries),
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None)

    # Processes meeting an empty database each create Optuna's tables; all but one then find
    # them made (a unique or "already exists" error): they look again and take those.
    for attempt in range(5):
        try:
            return connect()
        except Exception as exc:
            if attempt == 4 or not _schema_race(exc):
                raise
            time.sleep(0.2 + random.random() * 0.5)
    raise AssertionError("unreachable")


def _schema_race(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("integrityerror", "uniqueviolation", "already exists", "duplicate"))


def retry_elsewhere(retries: int):
    """What happens to a trial failed because its agent died: its parameters run again (at most
    ``retries`` times) as a new trial that keeps the grid's place and the parameters, but nothing
    of the dead agent's (who ran it, why it failed, its exit)."""
    import optuna

    def retry(study, trial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if retries is not None and len(history) > retries:
            return
        system = {key: value for key, value in trial.system_attrs.items() if not key.startswith("unitb.")}
        system.update(failed_trial=trial.number, retry_history=history)
        user = {key: value for key, value in trial.user_attrs.items()
                if key not in ("unitb.error", "unitb.exit_code", "unitb.run", "unitb.output")}
        study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params,
                                            distributions=trial.distributions, user_attrs=user, system_attrs=system))

    return retry


def new_id() -> str:
    """Eight letters and digits, as W&B's sweep ids."""
    return "".join(random.SystemRandom().choice(_ID_LETTERS) for _ in range(8))


def _check_program(config: SweepConfig) -> None:
    """A trial runs ``program`` from the folder its agent starts in: a path that is no file here
    is refused now, naming where it was looked for, rather than failing every trial."""
    program = config.program
    if not program or "${program}" not in config.command:
        return
    if not os.path.isfile(program):
        raise SweepConfigError(f"program: {program!r} is not a file in {os.getcwd()} (agents run it from the folder "
                               "they start in: create and run the sweep from the folder the path is relative to, "
                               "or give an absolute path)")


def create(raw: Mapping[str, Any], name: Optional[str] = None, logdir: str = DEFAULT_LOGDIR,
           database: Optional[str] = None) -> Sweep:
    """Create the sweep of configuration ``raw`` (as read from its file): its folder and study.
    ``name`` becomes its id (a plain folder name; a new random id when None). The
    configuration is checked whole first: nothing is created for one that cannot run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # unitb says what it created
    config = parse(raw)
    space.dimensions(config)  # every parameter searchable, or a SweepConfigError naming it
    if config.metric is None:
        raise SweepConfigError("metric: unitb's sweeps need the metric a trial is judged by "
                               "(metric: {name: val/loss, goal: minimize})")
    _check_program(config)
    if name is not None and not _PLAIN_NAME.match(name):
        raise ValueError(f"--name {name!r}: a sweep's name is a folder name (letters, digits, '.', '_', '-')")
    ident = name or new_id()
    if storage.is_url(logdir):
        if database is None:
            raise ValueError(f"--logdir {logdir}: a sweep whose runs go to a store keeps its study in a database "
                             "(--storage postgresql://…): Optuna's journal file needs a file system")
        folder = storage.join(storage.normalize_url(logdir), ident)
    else:
        folder = os.path.abspath(os.path.join(logdir, ident))
        if os.path.exists(os.path.join(folder, SWEEP_FILE)):
            raise SweepExists(f"a sweep {ident!r} exists already in {folder}: run its agents (unitb sweep agent "
                              f"{ident}) or choose another --name")
        os.makedirs(folder, exist_ok=True)
    url = database or os.path.join(folder, SWEEP_JOURNAL)
    try:
        study = optuna.create_study(study_name=ident, storage=open_storage(url, ident=ident),
                                    direction="maximize" if config.metric.goal == "maximize" else "minimize")
    except optuna.exceptions.DuplicatedStudyError:
        where = _folder_of(ident, url)
        raise SweepExists(f"a sweep {ident!r} exists already in {_where(url)}"
                          + (f" (its folder: {where})" if where else "")
                          + f": run its agents (unitb sweep agent {ident}"
                          + (f" --storage {url}" if database else "") + ") or choose another --name") from None
    seed = random.SystemRandom().randrange(2 ** 31)
    study.set_user_attr(CONFIG_ATTR, dict(raw))
    study.set_user_attr(SEED_ATTR, seed)
    study.set_user_attr(FOLDER_ATTR, folder)
    study.set_user_attr("unitb.created", time.time())
    if not storage.is_url(folder):
        json_files.write(os.path.join(folder, SWEEP_FILE),
                         {"sweep": ident, "storage": database or SWEEP_JOURNAL}, durable=True)
    return Sweep(ident, folder, config, dict(raw), seed, url)


def _where(url: str) -> str:
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"  # no password in a message


def _folder_of(ident: str, url: str) -> str:
    """The folder of the sweep ``ident`` in ``url`` ('' while its creator has not said it yet)."""
    import optuna

    try:
        return str(optuna.load_study(study_name=ident, storage=open_storage(url, ident=ident))
                   .user_attrs.get(FOLDER_ATTR) or "")
    except Exception:
        return ""


def journal_path(ident: str, logdir: str = DEFAULT_LOGDIR) -> str:
    """The journal file of the sweep ``ident`` (its folder, or an id under ``logdir``), found
    without reading it: ``unitb sweep repair`` must reach a journal Optuna cannot read."""
    folder = ident if os.path.isfile(os.path.join(ident, SWEEP_FILE)) else os.path.join(logdir, ident)
    pointer = json_files.read_dict(os.path.join(folder, SWEEP_FILE))
    if not pointer:
        raise SweepNotFound(f"no sweep {ident!r}: {folder} holds no {SWEEP_FILE}")
    kept = str(pointer.get("storage", SWEEP_JOURNAL))
    if "://" in kept:
        raise ValueError(f"sweep {ident!r} keeps its trials in a database ({_where(kept)}), not a journal file")
    return os.path.join(folder, kept)


def find(ident: str, logdir: str = DEFAULT_LOGDIR, database: Optional[str] = None) -> Sweep:
    """The sweep ``ident``: a sweep folder's path, or an id under ``logdir`` (or in ``storage``)."""
    import optuna

    folder = ident if os.path.isfile(os.path.join(ident, SWEEP_FILE)) else os.path.join(logdir, ident)
    pointer = json_files.read_dict(os.path.join(folder, SWEEP_FILE))
    if database is None:
        if not pointer:
            raise SweepNotFound(f"no sweep {ident!r}: {folder} holds no {SWEEP_FILE} (give the sweep's folder, "
                                "--logdir where it was created, or --storage for a database sweep)")
        kept = str(pointer.get("storage", SWEEP_JOURNAL))
        storage_url = kept if "://" in kept else os.path.join(folder, kept)
    else:
        storage_url = database
    study_name = str(pointer.get("sweep", os.path.basename(os.path.normpath(ident))))
    try:
        summary = optuna.load_study(study_name=study_name, storage=open_storage(storage_url, ident=study_name))
    except KeyError as exc:
        raise SweepNotFound(f"no sweep {study_name!r} in {storage_url}") from exc
    attrs = summary.user_attrs
    raw = dict(attrs.get(CONFIG_ATTR) or {})
    return Sweep(study_name, str(attrs.get(FOLDER_ATTR) or os.path.abspath(folder)), parse(raw), raw,
                 int(attrs.get(SEED_ATTR, 0)), storage_url)
