"""Jobs of a sweep started at the same moment with the same logdir (a launcher that gives every
job one name): each gets its own run folder, and every run holds its own steps exactly once.
Real processes of both frameworks, released together by a GO file after their imports."""
from __future__ import annotations

import os
import subprocess
import sys
import time

from unitb import reader
from unitb.folder import versions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "parallel_start.py")
STEPS = 6


def _launch(jobs, logdir, tmp_path, envs=None):
    """Start every ``(kind, job)`` process (``envs[i]``: extra environment of job i), wait until
    all have imported their framework and sit polling for GO (each leaves ``GO.ready-JOB``),
    then create the GO file that releases them together. Returns ``{job: (kind, stdout, stderr)}``."""
    go = tmp_path / "GO"
    procs = []
    for index, (kind, job) in enumerate(jobs):
        env = {**os.environ, **((envs or [{}] * len(jobs))[index])}
        procs.append((kind, job, subprocess.Popen([sys.executable, SCRIPT, kind, logdir, str(go), str(job),
                                                   str(STEPS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                  text=True, env=env)))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not all(os.path.exists(f"{go}.ready-{job}") for _k, job, _p in procs):
        if any(p.poll() is not None for _k, _j, p in procs):
            break  # one died at start: its error is reported below
        time.sleep(0.05)
    go.write_text("go")
    out = {}
    for kind, job, proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{kind} job {job} failed:\n{stderr[-3000:]}"
        out[job] = (kind, stdout, stderr)
    return out


def _run_dir(stdout: str) -> str:
    return [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("run_dir ")][-1]


def _check_one_run_per_job(out, marks_tag):
    folders = {job: _run_dir(stdout) for job, (_kind, stdout, _err) in out.items()}
    assert len(set(folders.values())) == len(out), folders  # no two jobs share a folder
    for job, folder in folders.items():
        kind = out[job][0]
        scalars = reader.scalars(folder)
        steps = [s for s, _v in scalars["train/loss"]]
        assert steps == list(range(1, STEPS + 1)), (job, folder, steps)  # each step once, in order
        if marks_tag == "train/loss" or kind != "keras":
            assert [v for _s, v in scalars["train/loss"]] == [float(job * 1000 + s) for s in range(1, STEPS + 1)]
        else:
            assert {v for _s, v in scalars["train/job"]} == {float(job * 1000)}  # only this job's points
    return folders


def test_torch_and_keras_jobs_started_together_get_a_folder_each(tmp_path):
    logdir = str(tmp_path / "runs" / "sweep")
    jobs = [("torch", 1), ("torch", 2), ("torch", 3), ("keras", 4), ("keras", 5), ("tfloop", 6)]
    out = _launch(jobs, logdir, tmp_path)
    folders = _check_one_run_per_job(out, "train/job")
    assert sorted(folders.values()) == sorted(versions.version_path(logdir, n) for n in range(1, len(jobs) + 1))
    # Every job but the first to claim says where it went (why depends on timing: the folder was
    # claimed by a job started with it, or that job has already written there).
    moved = [err for _kind, _out, err in out.values() if "this fresh run (step 0) writes to" in err]
    assert len(moved) == len(jobs) - 1


def test_url_runs_started_together_claim_a_version_each_in_the_store(s3_env, moto_store, tmp_path):
    url = s3_env + "/runs/sweep"
    # Two machines (two spools) with two jobs each: the store's create-only write decides.
    jobs = [("torch", 1), ("torch", 2), ("tfloop", 3), ("tfloop", 4)]
    envs = [{**moto_store.env(), "UNITB_SPOOL": str(tmp_path / ("machine-a" if i % 2 == 0 else "machine-b"))}
            for i in range(len(jobs))]
    out = _launch(jobs, url, tmp_path, envs)
    folders = _check_one_run_per_job(out, "train/loss")  # read back from the store
    assert sorted(folders.values()) == sorted(versions.version_path(url, n) for n in range(1, len(jobs) + 1))
    claims = [k for k in moto_store.objects(s3_env + "/runs") if k.endswith(".unitb-claim")]
    assert len(claims) == len(jobs)
