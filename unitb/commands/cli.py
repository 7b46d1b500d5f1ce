"""The ``unitb`` command: look at runs without starting TensorBoard.

    unitb tags RUN                      tag, kind, count, first/last step (RUN: folder or URL)
    unitb export RUN --format csv|json  every row (scalars as values, others summarised)
    unitb diff RUN_A RUN_B [RUN_C ...]  layout parity; exit 1 on a mismatch
                                        (RUN may be a folder of runs: a sweep's, a log root)
    unitb restore PATH [--list]         put back event files a resume set aside
    unitb pull URL DIR [--every S]      copy runs from an object store (s3://, gs://) to DIR
    unitb push SPOOL URL                upload a spool a run could not upload at its end
    unitb hparams LOGDIR                what the HPARAMS tab opens on, for all runs below LOGDIR
    unitb query LOGDIR "SELECT …"       SQL (DuckDB) over the views runs, scalars and hparams
    unitb report LOGDIR [--out PAGE]    one offline HTML page comparing the runs
    unitb demo [--out runs] [--steps N] [--torch-example auto|mmpose|mmengine]
                                        train the three example runs and diff them
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from unitb.commands import arguments, queries
from unitb.files import storage
from unitb.read import diff as diff_mod
from unitb.read import logdir, run_reader

# The reading commands (tags, export, diff) are what people run most and wait on: the modules
# only other commands need are loaded by those commands, so a start-up loads what it uses.


def _runs_of(path: str) -> Tuple[Optional[List[Tuple[str, str]]], Optional[str]]:
    """What ``path`` is to the reading commands: a run (event files directly in it): ``(None,
    None)``; a folder that holds runs below it (a sweep's, a team's): ``(runs, None)``, from one
    listing; otherwise ``(None, error)``."""
    missing = arguments.not_a_folder(path, urls=True)
    if missing:
        return None, missing
    try:
        if run_reader.event_files(path):
            return None, None
        runs = logdir.runs_below(path)
    except Exception as exc:  # a store that does not answer, missing credentials ...
        return None, f"unitb: cannot list {path} ({type(exc).__name__}: {exc})"
    return (runs, None) if runs else (None, f"unitb: no event files directly in {path}, nor runs below it")


def cmd_tags(args: argparse.Namespace) -> int:
    runs, error = _runs_of(args.run)
    if error:
        print(error, file=sys.stderr)
        return 2
    if runs is None:
        table = run_reader.tag_summary(args.run)
        width = max([len(str(e["tag"])) for e in table] + [3])
        print(f"{'tag'.ljust(width)}  {'kind':<14} {'count':>6} {'first':>8} {'last':>8}")
        for entry in table:
            print(f"{str(entry['tag']).ljust(width)}  {entry['kind']:<14} {entry['count']:>6} "
                  f"{entry['first_step']:>8} {entry['last_step']:>8}")
        return 0
    summaries = list(logdir.tag_summaries(args.run, runs))
    run_width = max([len(name) for name, _ in summaries] + [3])
    width = max([len(str(e["tag"])) for _, table in summaries for e in table] + [3])
    lines = [f"{'run'.ljust(run_width)}  {'tag'.ljust(width)}  {'kind':<14} {'count':>6} {'first':>8} {'last':>8}"]
    for name, table in summaries:
        lines.extend(f"{name.ljust(run_width)}  {str(entry['tag']).ljust(width)}  {entry['kind']:<14} "
                     f"{entry['count']:>6} {entry['first_step']:>8} {entry['last_step']:>8}" for entry in table)
    print("\n".join(lines))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "parquet":
        return _export_parquet(args)
    runs, error = _runs_of(args.run)
    if error:
        print(error, file=sys.stderr)
        return 2
    sys.stdout.flush()
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    try:
        if runs is None:
            logdir.export_run(args.run, args.format, out)  # streamed: a run of any size in bounded memory
        else:
            logdir.export_runs(args.run, runs, args.format, out)
    finally:
        if args.output:
            out.close()
        else:
            out.flush()
    return 0


def _export_parquet(args: argparse.Namespace) -> int:
    from unitb.read import tables

    if not args.output:
        print("unitb export: --format parquet writes a file: give it with -o OUT.parquet", file=sys.stderr)
        return 2
    missing = arguments.not_a_folder(args.run, urls=True)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    try:
        runs, rows = tables.write_parquet(args.run, args.output)
    except ImportError:
        print('unitb export: Parquet needs pyarrow: pip install "unitb[parquet]"', file=sys.stderr)
        return 2
    if not runs:
        print(f"unitb export: no runs (event files) below {args.run}", file=sys.stderr)
        return 1
    print(f"unitb: {rows} scalars of {runs} run(s) in {args.output}; their hparams in "
          f"{tables.hparams_path(args.output)}", file=sys.stderr)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    folders: List[str] = []
    for run in args.runs:
        runs, error = _runs_of(run)
        if error:
            print(error, file=sys.stderr)
            return 2
        folders.extend([run] if runs is None else [folder for _name, folder in runs])
    if len(folders) < 2:
        print("unitb diff: give at least two runs (or a folder with runs below it)", file=sys.stderr)
        return 2
    layouts = logdir.layouts(args.runs[0], folders)
    report = diff_mod.compare(layouts)
    print(diff_mod.format_report(layouts, report))
    return 0 if report.ok else 1


def cmd_restore(args: argparse.Namespace) -> int:
    from unitb.files import safe_paths
    from unitb.folder import set_aside

    missing = arguments.not_a_folder(args.path)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    sets = set_aside.removals(args.path)
    if not sets:
        print(f"unitb: nothing set aside below {args.path}")
        return 0
    refused = 0
    for trash in sets:
        try:
            with open(os.path.join(trash, set_aside.MANIFEST)) as handle:
                manifest = json.load(handle)
            first, last = manifest.get("dropped_steps", [0, 0])
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            print(f"unitb: {trash}: unreadable manifest ({exc}); left as it is", file=sys.stderr)
            refused += 1
            continue
        what = (f"{trash}: {manifest.get('dropped', 0)} event(s) of steps {first}..{last}, set aside when the run "
                f"resumed at step {manifest.get('resume_step')}")
        if args.list:
            print(what)
            continue
        try:
            restored = set_aside.restore(trash)
        except safe_paths.UnsafePath as exc:
            print(f"unitb: {trash}: refused, its manifest {exc}; nothing was moved", file=sys.stderr)
            refused += 1
            continue
        print(f"{what}: put back {len(restored)} file(s) ({', '.join(os.path.dirname(p) for p in restored[:1])})")
    return 1 if refused else 0


def cmd_pull(args: argparse.Namespace) -> int:
    from unitb.commands.demo import runnable
    from unitb.store import transfer

    if not storage.is_url(args.url):
        print(f"unitb: {args.url} is not a URL (s3://…, gs://…)", file=sys.stderr)
        return 2
    if args.every:
        try:
            transfer.pull_every(args.url, args.dest, args.every)
        except KeyboardInterrupt:
            return 0
    fetched, unchanged = transfer.pull(args.url, args.dest, include_removed=args.include_removed)
    print(f"unitb: {args.url} -> {args.dest}: fetched {fetched} file(s), {unchanged} unchanged; "
          f"view with: {runnable('tensorboard', 'tensorboard.main')} --logdir {args.dest}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from unitb.store import transfer

    if args.to:
        return push_to_backends(args)
    if not os.path.isdir(args.local) or not args.url or not storage.is_url(args.url):
        print("unitb push: give a local folder and a URL (s3://…, gs://…)", file=sys.stderr)
        return 2
    ok = transfer.push(args.local, args.url, timeout=args.timeout)
    print(f"unitb: {args.local} -> {args.url}: {'up to date' if ok else 'not finished (see the warning)'}")
    return 0 if ok else 1


def push_to_backends(args: argparse.Namespace) -> int:
    """``unitb push RUN --to NAME``: each run below RUN, at its TensorBoard steps, to any
    registered backend (:mod:`unitb.backends.registry`)."""
    from unitb.backends import forwarder, registry
    from unitb.notices import default_warn

    # The built-in backends' flags; any backend's keyword is also --option NAME.KEY=VALUE.
    given = {"wandb": {"project": args.project, "entity": args.entity, "mode": args.wandb_mode, "dir": args.wandb_dir,
                       "name": args.name},
             "mlflow": {"tracking_uri": args.tracking_uri, "experiment": args.experiment, "run_name": args.name}}
    chosen: Dict[str, Dict[str, object]] = {
        name: {k: v for k, v in given.get(name, {}).items() if v is not None} for name in args.to}
    for option in args.option:
        target, equals, value = option.partition("=")
        name, dot, key = target.partition(".")
        if not (equals and dot and name and key):
            print(f"unitb push: --option takes NAME.KEY=VALUE, got {option!r}", file=sys.stderr)
            return 2
        if name not in chosen:
            print(f"unitb push: --option {option!r} is for {name!r}, which no --to names", file=sys.stderr)
            return 2
        chosen[name][key] = value
    try:
        settings = registry.check_backends(chosen)
    except ValueError as exc:
        print(f"unitb push: {exc}", file=sys.stderr)
        return 2
    found = run_reader.find_runs(args.local) if os.path.isdir(args.local) else []
    if not found:
        print(f"unitb push: no run (event files) below {args.local}", file=sys.stderr)
        return 2
    for run in found:
        sent = forwarder.push(run, settings, default_warn)
        print(f"unitb: {run} -> " + ", ".join(f"{name} up to step {step}" for name, step in sorted(sent.items())))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    """``unitb alerts send RUN``: the run's alerts a channel has not taken yet, sent from here."""
    from unitb.life import alert_delivery

    if not os.path.isdir(args.run):
        print(f"unitb alerts: {args.run} is not a folder", file=sys.stderr)
        return 2
    said: List[str] = []
    counts = alert_delivery.send_pending(args.run, args.timeout, said.append)
    for line in said:
        print(line, file=sys.stderr)
    print(f"unitb alerts: {counts['sent']} sent, {counts['left']} still pending in {args.run}")
    return 0 if counts["left"] == 0 else 1


def cmd_hparams(args: argparse.Namespace) -> int:
    from unitb.write import hparams

    if not os.path.isdir(args.logdir):
        print(f"unitb hparams: {args.logdir} is not a folder", file=sys.stderr)
        return 2
    path = hparams.write_experiment(args.logdir, args.shared, args.metric)
    if path is None:
        print(f"unitb hparams: no runs below {args.logdir}", file=sys.stderr)
        return 1
    print(f"unitb: wrote {path}: the HPARAMS tab of `tensorboard --logdir {args.logdir}` opens on the shared "
          "hyperparameters, train/loss and every val/* metric")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from unitb.commands import demo

    names = [name.strip() for name in (args.backends or "").split(",") if name.strip()]
    return demo.run(out=args.out, steps=args.steps, torch_example=args.torch_example, backends=names,
                    tracking_uri=args.tracking_uri, activations=args.activations)


def _version() -> str:
    """The installed unitb's version (a source tree that was never installed says so)."""
    from importlib import metadata

    try:
        return metadata.version("unitb")
    except metadata.PackageNotFoundError:
        return "(not installed)"


class _VersionAction(argparse.Action):
    """``--version``: the installed version is looked up when asked (importlib.metadata costs every
    other command ~12 ms of start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the installed version and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"unitb {_version()}")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unitb", description="One TensorBoard layout for PyTorch and TensorFlow.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    tags = arguments.command(sub, "tags", help="list the tags of a run, or of every run below a folder")
    tags.add_argument("run", help="a run folder (or a URL: s3://…, gs://…) holding event files, or a folder of "
                      "runs (a sweep's, a log root): a row per run and tag")
    tags.set_defaults(func=cmd_tags)
    export = arguments.command(sub, "export", help="export a run's rows, or every run's below a folder, as CSV, "
                               "JSON or Parquet")
    export.add_argument("run", help="a run folder (or a URL) holding event files, or a folder of runs (the run's "
                        "name is then the first column); parquet always has the run column")
    export.add_argument("--format", choices=("csv", "json", "parquet"), default="csv",
                        help="output format (default: csv); parquet: the scalars of every run below RUN, and their "
                        "hparams beside them in OUT.hparams.parquet")
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.set_defaults(func=cmd_export)
    compare = arguments.command(sub, "diff", help="compare the layouts of two or more runs (exit 1 on mismatch)")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="two or more run folders (or URLs) holding event files; a folder of runs stands "
                         "for every run below it")
    compare.set_defaults(func=cmd_diff)
    restore = arguments.command(sub, "restore", help="put back the event files a resume set aside (newest first)")
    restore.add_argument("path", help="a run folder or any folder above it")
    restore.add_argument("--list", action="store_true", help="only list what was set aside")
    restore.set_defaults(func=cmd_restore)
    pull = arguments.command(sub, "pull", help="copy runs from an object store into a local folder (for TensorBoard)")
    pull.add_argument("url", help="s3://bucket/runs/exp (a run or a folder of runs)")
    pull.add_argument("dest", help="local folder")
    pull.add_argument("--every", type=float, default=0, metavar="SECONDS", help="keep pulling changes until Ctrl-C")
    pull.add_argument("--include-removed", action="store_true", help="also copy what resumes set aside")
    pull.set_defaults(func=cmd_pull)
    push = arguments.command(sub, "push", help="upload a run's spool that could not reach its store (push LOCAL URL), "
                             "or send runs to W&B / MLflow (push RUN --to wandb)")
    push.add_argument("local", help="a run folder, or a folder of runs with --to")
    push.add_argument("url", nargs="?", help="s3://… or gs://… (without --to)")
    push.add_argument("--timeout", type=float, default=60.0, help="seconds to keep retrying (default: 60)")
    push.add_argument("--to", action="append", metavar="BACKEND",
                      help="a backend: wandb, mlflow, or one an installed package registers (repeat for several)")
    push.add_argument("--option", action="append", default=[], metavar="BACKEND.KEY=VALUE",
                      help="one of a backend's options, for any backend (repeat)")
    push.add_argument("--name", help="the backend run's name (default: the run folder's name)")
    push.add_argument("--project", help="W&B project (default: unitb)")
    push.add_argument("--entity", help="W&B entity")
    push.add_argument("--wandb-mode", choices=("online", "offline"), help="W&B mode (default: W&B's own)")
    push.add_argument("--wandb-dir", help="where W&B keeps its local files")
    push.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLflow's own)")
    push.add_argument("--experiment", help="MLflow experiment (default: unitb)")
    push.set_defaults(func=cmd_push)
    hparams = arguments.command(sub, "hparams", help="write the experiment summary the HPARAMS tab opens on, for "
                                "every run below a log root")
    hparams.add_argument("logdir", help="the folder you point TensorBoard at")
    hparams.add_argument("--shared", action="append", default=[], metavar="NAME",
                         help="a hyperparameter to show even where some runs lack it (repeat)")
    hparams.add_argument("--metric", action="append", default=[], metavar="TAG",
                         help="a scalar to list first among the metrics, such as a sweep's (repeat)")
    hparams.set_defaults(func=cmd_hparams)
    demo = arguments.command(sub, "demo", help="train tiny PyTorch and TensorFlow models into comparable runs")
    demo.add_argument("--out", default="runs", help="folder the runs are written into (default: runs)")
    demo.add_argument("--steps", type=int, default=64,
                      help="training steps, rounded up to a multiple of 8 (default: 64)")
    demo.add_argument("--torch-example", choices=arguments.TORCH_CHOICES, default="auto",
                      help="the PyTorch run: mmpose when installed (auto), or force one")
    demo.add_argument("--backends", metavar="wandb,mlflow",
                      help="also send the runs to W&B (offline unless WANDB_MODE is set) and/or MLflow")
    demo.add_argument("--tracking-uri", help="MLflow tracking URI (default: a SQLite file in --out)")
    demo.add_argument("--activations", action="store_true",
                      help="also histograms of some layers' outputs (activations/*; off: not asked for by default)")
    demo.set_defaults(func=cmd_demo)
    alerts = arguments.command(sub, "alerts", help="send a run's alerts that could not be delivered where it ran")
    alert_verbs = alerts.add_subparsers(dest="verb", required=True)
    send = arguments.command(alert_verbs, "send", help="send the run's pending alerts to their webhook and command")
    send.add_argument("run", help="the run's folder")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds a delivery may take (default: 10)")
    send.set_defaults(func=cmd_alerts)
    queries.add_parsers(sub)
    arguments.add_sweep_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sweep":
            from unitb.commands import sweeps

            code = sweeps.run_command(args)
        else:
            code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader of the output went away (`unitb export RUN | head`): stop quietly, and
        # point stdout at /dev/null so the interpreter's own flush at exit does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
