"""Reading runs back: unitb's readers against TensorBoard's and tbparse, the CLI as a whole process,
and a sweep's logdir of many runs."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from bench_common import HERE, Row, met


READERS = {
    # name: (imports, body) run in a fresh process on RUN; the time is measured around the body
    "unitb tags": ("from unitb import reader", "reader.tag_summary(RUN)"),
    "unitb export csv": ("import os\nfrom unitb.commands import cli", "cli.main(['export', RUN, '-o', os.devnull])"),
    "unitb diff (layout of one run)": ("from unitb.read import diff", "diff.layout_of(RUN)"),
    "unitb reader.scalars()": ("from unitb import reader", "reader.scalars(RUN)"),
    "unitb reader.scalar_arrays()": ("from unitb import reader", "reader.scalar_arrays(RUN)"),
    "tbparse SummaryReader(run).scalars": ("from tbparse import SummaryReader", "SummaryReader(RUN).scalars"),
    "EventAccumulator.Reload()": ("from tensorboard.backend.event_processing.event_accumulator import EventAccumulator",
                                  "EventAccumulator(RUN, size_guidance={'scalars': 0}).Reload()"),
}


UNITB_READERS = [name for name in READERS if name.startswith("unitb")]


PEER = "tbparse SummaryReader(run).scalars"
# Peak RSS from /proc VmHWM: getrusage's ru_maxrss survives exec, so a child started from a
# parent that holds TensorFlow would report the parent's peak.


_READ_SNIPPET = """
import sys, time
RUN = sys.argv[1]
{imports}
t = time.perf_counter()
{body}
took = time.perf_counter() - t
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(took, int(peak) / 1024)
"""


def make_scalar_run(path: str, events: int, tags: int = 10) -> None:
    """A run of ``events`` plain scalars (``simple_value``, as torch's SummaryWriter writes
    them) over ``tags`` tags, written record by record with tensorboard's own writer."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(path, max_queue_size=100000, flush_secs=600)
    for index in range(events):
        step, tag = index // tags + 1, index % tags
        value = summary_pb2.Summary.Value(tag=f"train/tag{tag}", simple_value=step * 0.001 + tag)
        writer.add_event(event_pb2.Event(step=step, wall_time=1.7e9 + step, summary=summary_pb2.Summary(value=[value])))
    writer.close()


def make_tf_form_run(path: str, values: int, tags: int = 10) -> None:
    """A run of ``values`` scalars in the tensor form unitb's TF sink writes (one event a step
    holding every tag, scalars plugin metadata on each value) with real-clock wall times, and a
    histogram event every 1000 steps."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from unitb.write import protos

    import numpy as np

    writer = EventFileWriter(path, max_queue_size=100000, flush_secs=600)
    weights = np.random.default_rng(0).normal(size=1000)
    start = time.time()
    for step in range(1, values // tags + 1):
        summary = protos.scalars_summary([(f"train/tag{tag}", step * 0.001 + tag) for tag in range(tags)])
        writer.add_event(event_pb2.Event(step=step, wall_time=start + step * 0.013, summary=summary))
        if step % 1000 == 0:
            writer.add_event(event_pb2.Event(step=step, wall_time=start + step * 0.013,
                                             summary=protos.histogram_summary("weights/layer", weights)))
    writer.close()


def _read_in_fresh_process(name: str, run: str) -> Tuple[float, float]:
    imports, body = READERS[name]
    snippet = _READ_SNIPPET.format(imports=imports, body=body)
    out = subprocess.run([sys.executable, "-c", snippet, run], capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if out.returncode != 0:
        raise RuntimeError(f"{name}: {out.stderr[-2000:]}")
    seconds, rss = out.stdout.split()[-2:]
    return float(seconds), float(rss)


def _rust_loader(run: str, keep_all: bool) -> Optional[Tuple[float, float]]:
    """(seconds, peak RSS MB) of one load cycle of TensorBoard's Rust data server on ``run``, as
    it reports it in its log; ``keep_all`` keeps every scalar (unitb returns every one),
    otherwise the server keeps its default reservoir of 1000 points a tag. None when the
    tensorboard-data-server package has no binary for this platform."""
    import re

    try:
        from tensorboard_data_server import server_binary
    except ImportError:
        return None
    binary = server_binary()
    if binary is None:
        return None
    args = [binary, "--logdir", run, "--reload", "once", "--port", "0", "--die-after-stdin", "-v"]
    if keep_all:
        args += ["--samples-per-plugin", "scalars=all"]
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"Finished load cycle \(([\d.]+)(ms|s|µs)\)", line)
            if found:
                seconds = float(found.group(1)) / {"s": 1, "ms": 1e3, "µs": 1e6}[found.group(2)]
                with open(f"/proc/{process.pid}/status") as status:
                    peak = [l for l in status if l.startswith("VmHWM")][0].split()[1]
                return seconds, int(peak) / 1024
        raise RuntimeError("the data server ended without finishing a load cycle")
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=30)


# Runs `unitb ARGS` from a small launcher: a child forked from this benchmark (TensorFlow loaded)
# would report this process's peak RSS as its own, since the peak survives exec.


_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "unitb", *sys.argv[1:]])
_pid, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status))
"""


def _cli_process(*args: str, env: Optional[Dict[str, str]] = None) -> Tuple[float, float]:
    """(seconds, peak RSS MB) of ``unitb ARGS`` as a whole process — interpreter start and
    imports included, which a user waits for — its worker processes' peaks included."""
    out = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, *args], capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})))
    seconds, peak, code = out.stdout.split()[-3:]
    if int(code) not in (0, 1):  # diff exits 1 on runs that are not unitb's
        raise RuntimeError(f"unitb {' '.join(args)}: {out.stderr[-2000:]}")
    return float(seconds), float(peak)


CLI_COMMANDS = {
    # what a user types, on RUN. Text goes to /dev/null (the Rust loader writes nothing; writing
    # a 5M-row CSV to this VM's disk adds ~1 s of the disk's own); Parquet to a scratch file.
    "unitb tags": ("tags", "RUN"),
    "unitb export --format csv": ("export", "RUN", "-o", os.devnull),
    "unitb export --format json": ("export", "RUN", "--format", "json", "-o", os.devnull),
    "unitb export --format parquet": ("export", "RUN", "--format", "parquet", "-o", "OUT.parquet"),
    "unitb diff": ("diff", "RUN", "RUN"),
}


def _cli_best(name: str, run: str, scratch: str, trials: int, env: Optional[Dict[str, str]] = None,
              diff_of: Optional[List[str]] = None) -> Tuple[float, float]:
    """Best time and largest peak RSS of a CLI command over ``trials`` whole processes."""
    words = [w.replace("OUT", os.path.join(scratch, "out")) for w in CLI_COMMANDS[name]]
    words = [run if w == "RUN" else w for w in words]
    if name == "unitb diff" and diff_of is not None:
        words = ["diff", *diff_of]
    results = [_cli_process(*words, env=env) for _ in range(trials)]
    return min(t for t, _ in results), max(r for _, r in results)


def bench_reading(quick: bool) -> List[Row]:
    """Reading big runs and resuming them: unitb against TensorBoard's own Rust loader (and
    tbparse, EventAccumulator where installed) on the same file, each in a fresh process
    (time around the call, peak RSS of the process)."""
    import shutil
    from importlib.util import find_spec

    runs = [("torch-form", 20_000)] if quick else [("torch-form", 500_000), ("tf-form", 500_000),
                                                     ("torch-form", 5_000_000)]
    rows: List[Row] = []
    if find_spec("tbparse") is None:
        rows.append(("read: tbparse", "not installed (pip install tbparse, or the `bench` extra)", "—", "—"))
    for form, events in runs:
        root = tempfile.mkdtemp(prefix="unitb-read-")
        run = os.path.join(root, "run")
        (make_scalar_run if form == "torch-form" else make_tf_form_run)(run, events)
        trials = 1 if quick or events > 1_000_000 else 3
        names = [n for n in READERS if (n != PEER or find_spec("tbparse") is not None)
                 and (n != "EventAccumulator.Reload()" or events <= 1_000_000)]
        results = {name: [_read_in_fresh_process(name, run) for _ in range(trials)] for name in names}
        best = {name: min(t for t, _ in values) for name, values in results.items()}
        rss = {name: max(r for _, r in values) for name, values in results.items()}
        rust = {keep_all: [_rust_loader(run, keep_all) for _ in range(trials)] for keep_all in (True, False)}
        label = f"{events // 1000}k" if events < 1_000_000 else f"{events // 1_000_000}M"
        size_mb = sum(os.path.getsize(os.path.join(run, f)) for f in os.listdir(run)) / 2 ** 20
        what = (f"a {label}-scalar run ({size_mb:.0f} MB, "
                + ("simple_value events as torch writes them" if form == "torch-form"
                   else "tensor-form scalars, ten an event, as unitb's TF sink writes them") + ")")
        if None in rust[True]:
            rows.append((f"read {what}: TensorBoard's Rust loader", "not available on this platform", "—", "—"))
            rust_all = rust_default = (float("nan"), float("nan"))
        else:
            rust_all = (min(t for t, _ in rust[True]), max(r for _, r in rust[True]))
            rust_default = (min(t for t, _ in rust[False]), max(r for _, r in rust[False]))
            rows.append((f"read {what}: TensorBoard's Rust data server, one load cycle (min of {trials})",
                         f"{rust_all[0]:.2f} s keeping every point, peak RSS {rust_all[1]:.0f} MB; "
                         f"{rust_default[0]:.2f} s with its default 1000-point reservoir a tag, "
                         f"{rust_default[1]:.0f} MB", "(reference)", "—"))
        for name in UNITB_READERS:
            peer = f"; tbparse {best[PEER]:.2f} s ({best[PEER] / best[name]:.0f}× slower)" if PEER in best else ""
            rows.append((f"… {name} (min of {trials})",
                         f"{best[name]:.2f} s = {best[name] / rust_all[0]:.2f}× the Rust loader keeping every point, "
                         f"{best[name] / rust_default[0]:.2f}× its default; peak RSS {rss[name]:.0f} MB{peer}",
                         "≤ 2× the Rust loader at its default", met(best[name] <= 2 * rust_default[0])))
        scratch = os.path.join(root, "scratch")
        os.makedirs(scratch, exist_ok=True)
        for name in CLI_COMMANDS:
            if name == "unitb diff":
                continue  # the in-process layout row above is the diff of one run
            took, rss_mb = _cli_best(name, run, scratch, trials)
            rows.append((f"… `{name}` as a whole process (interpreter and imports included; min of {trials})",
                         f"{took:.2f} s = {took / rust_default[0]:.2f}× the Rust loader's default load cycle, "
                         f"{took / rust_all[0]:.2f}× keeping every point; peak RSS {rss_mb:.0f} MB",
                         "≤ 2× the Rust loader at its default", met(took <= 2 * rust_default[0])))
        if "EventAccumulator.Reload()" in best:
            rows.append(("… EventAccumulator.Reload() (reference)",
                         f"{best['EventAccumulator.Reload()']:.2f} s; peak RSS {rss['EventAccumulator.Reload()']:.0f} MB",
                         "—", "—"))
        if form == "torch-form":
            rows.extend(_resume_rows(run, root, events, trials, label, best.get("EventAccumulator.Reload()")))
        shutil.rmtree(root, ignore_errors=True)
    return rows


def bench_logdir(quick: bool) -> List[Row]:
    """A sweep's logdir: ``unitb tags``, ``export`` (csv, json, parquet) and ``diff`` over a folder
    of runs as whole processes, against the Rust loader's load cycle over the same folder; the
    runs read by one worker a core, or by one process (``UNITB_READ_WORKERS=1``); and the same
    folder in a moto S3 bucket (the Rust loader reads local disk only: its local figure is the
    reference there)."""
    import shutil

    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # s3_store, for the S3 rows
    steps, tags = (500, 10) if quick else (5000, 10)
    sizes = [4] if quick else [100, 500]
    trials = 1 if quick else 2
    rows: List[Row] = []
    root = tempfile.mkdtemp(prefix="unitb-logdir-")
    try:
        model = os.path.join(root, "model")
        make_scalar_run(model, steps * tags, tags)
        (event_file,) = os.listdir(model)
        for runs in sizes:
            logdir = os.path.join(root, f"sweep-{runs}")
            for index in range(runs):
                os.makedirs(os.path.join(logdir, f"trial-{index:03d}"))
                shutil.copy(os.path.join(model, event_file), os.path.join(logdir, f"trial-{index:03d}"))
            scratch = os.path.join(root, "scratch")
            os.makedirs(scratch, exist_ok=True)
            size_mb = runs * os.path.getsize(os.path.join(model, event_file)) / 2 ** 20
            what = f"a sweep's logdir: {runs} runs of {steps} steps × {tags} tags ({size_mb:.0f} MB)"
            rust_default = min(_rust_loader(logdir, False)[0] for _ in range(trials))  # type: ignore[index]
            rust_all = min(_rust_loader(logdir, True)[0] for _ in range(trials))  # type: ignore[index]
            rows.append((f"{what}: TensorBoard's Rust data server, one load cycle (min of {trials})",
                         f"{rust_default:.2f} s with its default reservoir; {rust_all:.2f} s keeping every point",
                         "(reference)", "—"))
            for name in CLI_COMMANDS:
                took, peak = _cli_best(name, logdir, scratch, trials, diff_of=[logdir])
                one, one_peak = (float("nan"), float("nan")) if quick else _cli_best(
                    name, logdir, scratch, 1, env={"UNITB_READ_WORKERS": "1"}, diff_of=[logdir])
                rows.append((f"… `{name} LOGDIR`, whole process, a worker a core (min of {trials})",
                             f"{took:.2f} s = {took / rust_default:.2f}× the Rust default ({took / rust_all:.2f}× "
                             f"every point); peak RSS {peak:.0f} MB a process; one process: {one:.2f} s, "
                             f"{one_peak:.0f} MB", "≤ 2× the Rust loader at its default",
                             met(took <= 2 * rust_default)))
            if runs == sizes[0]:
                rows.extend(_logdir_in_store(logdir, scratch, rust_default, trials, what))
            shutil.rmtree(logdir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _logdir_in_store(logdir: str, scratch: str, rust_default: float, trials: int, what: str) -> List[Row]:
    """The same logdir read from a moto S3 bucket on loopback."""
    from s3_store import MotoStore

    store = MotoStore().start()
    try:
        env = store.env()
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            import s3fs

            bucket = store.make_bucket("logdir")
            started = time.perf_counter()
            s3fs.S3FileSystem(skip_instance_cache=True).put(logdir, bucket + "/sweep", recursive=True)  # not an earlier store's
            upload = time.perf_counter() - started
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        url = bucket + "/sweep"
        rows: List[Row] = []
        for name in ("unitb tags", "unitb export --format csv", "unitb diff"):
            took, peak = _cli_best(name, url, scratch, trials, env=env, diff_of=[url])
            one = float("nan") if trials == 1 else _cli_best(name, url, scratch, 1, env=dict(env, UNITB_READ_WORKERS="1"),
                                                             diff_of=[url])[0]
            rows.append((f"… the same in S3 (moto on loopback; upload {upload:.0f} s, not counted): `{name} URL` "
                         f"(min of {trials})",
                         f"{took:.2f} s = {took / rust_default:.2f}× the Rust default on local disk; peak RSS "
                         f"{peak:.0f} MB; one process: {one:.2f} s", "≤ 2× the Rust loader at its default",
                         met(took <= 2 * rust_default)))
        return rows
    finally:
        store.stop()


def _resume_rows(run: str, root: str, events: int, trials: int, label: str,
                 accumulator: Optional[float]) -> List[Row]:
    """How long a resume's clean-up takes on the same run: without and with the step index."""
    import shutil

    from unitb.folder import set_aside
    from unitb.folder import step_index

    rows: List[Row] = []
    last_step = events // 10
    if events <= 1_000_000 and accumulator:
        for resume_step, what in ((last_step + 1, "no orphans"), (last_step - 1000, "10k orphans")):
            copies = []
            for _ in range(trials):
                target = os.path.join(root, "copy")
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(run, target)
                started = time.perf_counter()
                set_aside.truncate_run(target, resume_step)
                copies.append(time.perf_counter() - started)
            took = min(copies)
            if what == "no orphans":
                rows.append((f"resume start on the {label} run, {what}: truncate_run vs an EventAccumulator load",
                             f"{took:.2f} s = {took / accumulator:.2f}× of {accumulator:.2f} s",
                             "≤ 0.1×", met(took / accumulator <= 0.1)))
            else:
                rows.append((f"resume start on the {label} run, {what} (steps {resume_step + 1}..{last_step})",
                             f"{took:.2f} s", "< 2 s", met(took < 2)))
    # The same no-orphan resume when the run was written by unitb, whose writer thread keeps the
    # step index (unitb.folder.step_index) at each flush: only the bytes since the last update are read.
    target = os.path.join(root, "indexed")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(run, target)
    started = time.perf_counter()
    step_index.update(target)  # in a real run: a piece at each flush, on the writer thread
    build = time.perf_counter() - started
    indexed = []
    kept = None
    for _ in range(trials):
        started = time.perf_counter()
        kept = set_aside.truncate_run(target, last_step + 1)
        indexed.append(time.perf_counter() - started)
    rows.append((f"resume start on the {label} run, no orphans, with the step index unitb's writer keeps",
                 f"{min(indexed) * 1000:.1f} ms (set aside: {kept is not None}); building the index once "
                 f"{build:.2f} s, spread over the run at each flush", "well under 1 s, any length",
                 met(min(indexed) < 0.1 and kept is None)))
    return rows
