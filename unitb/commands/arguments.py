"""Arguments of the commands whose work loads heavy modules (``unitb sweep …``, ``unitb demo``),
kept apart from that work: the ``unitb`` command builds its whole parser on every call, and
only the command that runs needs its modules loaded."""
from __future__ import annotations

import argparse
import os
from typing import Optional

from unitb.files import storage
from unitb.sweep.defaults import DEFAULT_LOGDIR, HEARTBEAT_SECONDS

TORCH_CHOICES = ("auto", "mmpose", "mmengine")  # the PyTorch example ``unitb demo --torch-example`` runs


def not_a_folder(path: str, urls: bool = False, who: str = "unitb") -> Optional[str]:
    """What ``who`` says when ``path`` is not a folder (nor, with ``urls``, a store's URL); None when it is."""
    if (urls and storage.is_url(path)) or os.path.isdir(path):
        return None
    return f"{who}: {path} is not a directory"


def command(sub, name: str, help: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose own ``--help`` page opens with the line the command list shows for it."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", **kwargs)


def add_sweep_parser(sub) -> None:
    """``unitb sweep …`` on the main parser's subcommands (``sweeps.run_command`` runs the verb)."""
    sweep = command(sub, "sweep", help="hyperparameter sweeps from a W&B sweep config, on Optuna, offline")
    verbs = sweep.add_subparsers(dest="verb", required=True)

    def where(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--logdir", default=DEFAULT_LOGDIR,
                            help=f"the folder sweeps are created in (default: {DEFAULT_LOGDIR}); trials go to "
                            "LOGDIR/ID/trial-NNN")
        parser.add_argument("--storage", help="an Optuna database URL for the study (default: a journal file in "
                            "the sweep's folder)")

    def agents(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--count", type=int, help="trials per agent (default: until the sweep ends)")
        parser.add_argument("--retries", type=int, default=1, help="with --storage: how many times a trial whose "
                            "agent died runs again on another (default: 1)")
        parser.add_argument("--heartbeat", type=int, default=HEARTBEAT_SECONDS, metavar="SECONDS",
                            help="with --storage: how often an agent says it is alive; a trial silent for three "
                            f"beats is taken as dead (default: {HEARTBEAT_SECONDS})")

    create = command(verbs, "create", help="create a sweep from its config and print its id")
    create.add_argument("config", help="sweep.yaml (or .json) in W&B's format")
    create.add_argument("--name", help="the sweep's id (default: 8 random letters and digits)")
    where(create)
    agent = command(verbs, "agent", help="run a sweep's trials one after another")
    agent.add_argument("sweep", metavar="ID", help="the id create printed (or the sweep's folder)")
    agents(agent)
    where(agent)
    run = command(verbs, "run", help="create a sweep and run K agents on this machine")
    run.add_argument("config", help="sweep.yaml (or .json) in W&B's format")
    run.add_argument("--agents", type=int, default=1, help="agents at once (default: 1)")
    agents(run)
    run.add_argument("--name", help="the sweep's id (default: 8 random letters and digits)")
    where(run)
    status = command(verbs, "status", help="a table of a sweep's trials, best first")
    status.add_argument("sweep", metavar="ID", help="the sweep's id (or its folder)")
    where(status)
    mend = command(verbs, "repair", help="set aside the torn records of a sweep's journal file (each kept beside it)")
    mend.add_argument("sweep", metavar="ID", help="the sweep's id (or its folder)")
    mend.add_argument("--logdir", default=DEFAULT_LOGDIR, help="the folder the sweep was created in (default: runs)")
    page = command(verbs, "report", help="one HTML page: the trials and Optuna's figures")
    page.add_argument("sweep", metavar="ID", help="the sweep's id (or its folder)")
    page.add_argument("--out", default="report.html", help="the page to write (default: report.html)")
    where(page)
