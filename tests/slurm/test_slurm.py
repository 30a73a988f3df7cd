"""A real SLURM in the tests: workflows run through `--profile profiles/slurm` on a live cluster.

CI starts a one-node cluster on localhost with `.ci/slurm-up` (one GPU entry backed by
/dev/null). Without a controller that answers `sinfo`, these tests skip and say why.

What is checked: every job snakemake ran went through sbatch (it is in squeue's record of this
run, COMPLETED, with its SLURM log), GPU-tagged jobs asked SLURM for a GPU and CPU jobs did not,
and the outputs equal those of a local run of the same workflow. The repo's workflow also has
its pretraining job cancelled mid-way (as a time limit would) and must resume when started again.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yte

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
# Parquet columns that measure wall-clock speed differ between any two runs.
TIMING_COLUMN = re.compile(r"(_per_s|_seconds|_time|^seconds|^elapsed)$|^time_")
RUN_TIMEOUT_S = 600


def slurm_unavailable() -> str | None:
    """Why the SLURM tests cannot run here, or None when a controller answers with a node up."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client on PATH (sinfo/sbatch); CI starts one with .ci/slurm-up"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (slurmctld not running?); see .ci/slurm-up"
    if out.returncode != 0:
        return f"sinfo failed (no SLURM controller?): {out.stderr.strip()}; see .ci/slurm-up"
    states = out.stdout.split()
    if not any(s in ("idle", "mix", "alloc") for s in states):
        return f"no usable SLURM node (states: {states or 'none'}); see .ci/slurm-up"
    return None


_reason = slurm_unavailable()
if _reason and os.environ.get("STORYRL_REQUIRE_SLURM") == "1":  # set by .ci/run
    raise RuntimeError(f"STORYRL_REQUIRE_SLURM=1 but SLURM is unusable: {_reason}")
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")


@dataclass
class SlurmJob:
    rule: str
    gpu_tagged: bool  # the job's snakemake resources include gpu>0
    slurm_id: str
    state: str = ""
    comment: str = ""
    tres_per_job: str = ""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Jobs run with sbatch --export=ALL: they find this interpreter's snakemake through PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("STORYRL_SLURM_PARTITION", None)
    env.pop("SNAKEMAKE_SLURM_PARTITIONS", None)
    # No conda and no internet on the test cluster: jobs run in this venv (the profile's
    # documented way for an install without conda) instead of the rules' conda environments.
    env["STORYRL_SLURM_SDM"] = "none"
    return env


def _snakemake(workdir: Path, args: list[str]) -> str:
    cmd = [sys.executable, "-m", "snakemake", *args]
    try:
        done = subprocess.run(
            cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        _cancel_run(log)
        raise AssertionError(
            f"snakemake did not finish in {RUN_TIMEOUT_S} s: {' '.join(cmd)}\n{log[-4000:]}"
        ) from e
    log = done.stdout + done.stderr
    if done.returncode != 0:
        _cancel_run(log)
        raise AssertionError(
            f"snakemake failed ({done.returncode}): {' '.join(cmd)}\n{log[-6000:]}"
        )
    return log


def _run_uuid(log: str) -> str | None:
    m = re.search(r"SLURM run ID: (\S+)", log)
    return m.group(1) if m else None


def _cancel_run(log: str) -> None:
    """Cancel what this run left queued (only its own jobs: they carry the run id as job name)."""
    uuid = _run_uuid(log)
    if uuid and shutil.which("scancel"):
        subprocess.run(["scancel", "--name", uuid], capture_output=True, timeout=30)


def run_local(workdir: Path, extra: list[str]) -> str:
    return _snakemake(workdir, ["--cores", "2", *extra])


def _fit_to_node() -> list[str]:
    """The profile's per-rule CPUs and memory, capped at what the test cluster's node has.

    The profile is sized for the paper on a real cluster (e.g. 32 GB for the tokenizer); sbatch
    rejects a job the node cannot hold. These flags replace the profile's set-threads and
    set-resources keys with the same rules and values, capped.
    """
    cpus, mem = (
        int(float(v))
        for v in subprocess.run(
            ["sinfo", "-h", "-o", "%c %m"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[:2]
    )
    with (PROFILE / "config.yaml").open() as f:
        profile = yte.process_yaml(f, require_use_yte=True)
    threads = [f"{rule}={min(int(n), cpus)}" for rule, n in profile["set-threads"].items()]
    # mem_mb is an expression of the attempt: capped, it stays one.
    resources = [
        f"{rule}:{key}={f'min({v}, {mem // 4})' if key == 'mem_mb' else v}"
        for rule, res in profile["set-resources"].items()
        for key, v in res.items()
    ]
    return ["--set-threads", *threads, "--set-resources", *resources]


def _slurm_args(extra: list[str]) -> list[str]:
    # `extra` first: it may start with targets, which must not follow a list-valued option.
    return [
        *extra,
        "--profile",
        str(PROFILE),
        # Ask squeue every second instead of after 40 s: these jobs take seconds.
        "--slurm-init-seconds-before-status-checks",
        "1",
        *_fit_to_node(),
    ]


def run_slurm(workdir: Path, extra: list[str]) -> tuple[str, list[SlurmJob]]:
    """Run through the repo's SLURM profile; return the log and the jobs it submitted."""
    log = _snakemake(workdir, _slurm_args(extra))
    uuid = _run_uuid(log)
    assert uuid, f"the SLURM executor did not report a run id:\n{log[-3000:]}"
    return log, _submitted_jobs(log, uuid)


def _submitted_jobs(log: str, uuid: str) -> list[SlurmJob]:
    # Snakemake prints one block per job ("rule NAME:" ... "jobid: N" ... "resources: ...") and
    # the executor one line per submission; blocks of concurrent jobs can interleave lines.
    rule_of, gpu_of = {}, {}
    rule = None
    for line in log.splitlines():
        m = re.match(r"^(local)?rule (\S+):$", line.strip())
        if m:
            rule = None if m.group(1) else m.group(2)
            jobid = None
            continue
        m = re.match(r"^jobid: (\d+)$", line.strip())
        if m and rule:
            jobid = m.group(1)
            rule_of[jobid] = rule
            continue
        m = re.match(r"^resources: (.*)$", line.strip())
        if m and rule and jobid:
            gpus = re.search(r"\bgpu=(\d+)", m.group(1))
            gpu_of[jobid] = bool(gpus and int(gpus.group(1)) > 0)
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    jobs = [SlurmJob(rule_of.get(j, "?"), gpu_of.get(j, False), sid) for j, sid in submitted]

    # squeue keeps finished jobs for MinJobAge (300 s); the run id is every job's name.
    q = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", uuid, "--format=%i|%T|%k"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    queued = {}
    for row in q.stdout.splitlines():
        sid, state, comment = row.strip().split("|", 2)
        queued[sid] = (state, comment)
    for job in jobs:
        job.state, job.comment = queued.get(job.slurm_id, ("", ""))
        show = subprocess.run(
            ["scontrol", "-o", "show", "job", job.slurm_id],
            capture_output=True,
            text=True,
            timeout=30,
        )
        m = re.search(r"\bTresPerJob=(\S*)", show.stdout)
        job.tres_per_job = m.group(1) if m else ""
    # Nothing of this run may have reached SLURM without snakemake reporting it, or vice versa.
    assert sorted(queued) == sorted(j.slurm_id for j in jobs), (queued, jobs)
    return jobs


def executed_rules(log: str) -> list[str]:
    """Rules of the non-local jobs a run executed, one entry per job."""
    done = re.findall(r"Finished jobid: \d+ \(Rule: (\S+)\)", log)
    local = set(re.findall(r"^\s*localrule (\S+):", log, flags=re.M))
    return sorted(r for r in done if r not in local)


def check_jobs(workdir: Path, log: str, jobs: list[SlurmJob]) -> None:
    assert jobs, f"no job was submitted to SLURM:\n{log[-3000:]}"
    assert sorted(j.rule for j in jobs) == executed_rules(log), (
        "every job snakemake ran must have gone through sbatch",
        jobs,
        executed_rules(log),
    )
    for job in jobs:
        assert job.state == "COMPLETED", f"{job} did not complete in SLURM"
        assert job.comment.startswith(f"rule_{job.rule}"), job
        slurm_log = workdir / ".snakemake" / "slurm_logs" / f"rule_{job.rule}"
        assert any(slurm_log.rglob(f"{job.slurm_id}.log")), f"no SLURM log for {job} in {slurm_log}"
        if job.gpu_tagged:
            assert "gpu" in job.tres_per_job, f"GPU rule did not ask SLURM for a GPU: {job}"
        else:
            assert "gpu" not in job.tres_per_job, f"CPU rule asked SLURM for a GPU: {job}"


# --- a tiny self-contained workflow: one CPU rule, one GPU-tagged rule --------------------------

TINY_SNAKEFILE = r"""
rule all:
    input: "results/squares.txt"

rule numbers:
    output: "results/numbers.txt"
    log: "logs/numbers.log"
    benchmark: "benchmarks/numbers.tsv"
    shell: "seq 1 10 > {output}; echo slurm_job=${{SLURM_JOB_ID:-none}} > {log}"

rule squares:
    input: "results/numbers.txt"
    output: "results/squares.txt"
    log: "logs/squares.log"
    benchmark: "benchmarks/squares.tsv"
    resources: gpu=1
    shell: "awk '{{print $1*$1}}' {input} > {output}; echo slurm_job=${{SLURM_JOB_ID:-none}} > {log}"
"""


@pytest.mark.slow
def test_tiny_workflow_through_slurm(tmp_path):
    for name in ("local", "slurm"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Snakefile").write_text(TINY_SNAKEFILE)
    run_local(tmp_path / "local", [])
    log, jobs = run_slurm(tmp_path / "slurm", [])

    check_jobs(tmp_path / "slurm", log, jobs)
    assert sorted((j.rule, j.gpu_tagged) for j in jobs) == [("numbers", False), ("squares", True)]
    for job in jobs:
        # The rule's own command ran inside that very SLURM job.
        assert (
            tmp_path / "slurm" / "logs" / f"{job.rule}.log"
        ).read_text().strip() == f"slurm_job={job.slurm_id}"
        assert (tmp_path / "slurm" / "benchmarks" / f"{job.rule}.tsv").is_file()
    assert (tmp_path / "local" / "logs" / "numbers.log").read_text().strip() == "slurm_job=none"
    for out in ("results/numbers.txt", "results/squares.txt"):
        assert (tmp_path / "slurm" / out).read_bytes() == (tmp_path / "local" / out).read_bytes()
    assert (tmp_path / "slurm" / "results" / "squares.txt").read_text().split()[-1] == "100"


# --- the repo's own workflow on the test config -------------------------------------------------


def _result_files(workdir: Path) -> list[str]:
    """Every file the workflow wrote under results/, minus logs, benchmarks, resume state, run
    locks and a group evaluation's `.kept/` copies (their records hold the files' times)."""
    root = workdir / "results"
    return sorted(
        str(p.relative_to(workdir))
        for p in root.rglob("*")
        if p.is_file()
        and p.name not in (".snakemake_timestamp", ".storyrl.lock")  # the lock names its holder
        and not p.name.startswith("teacher_cache.sqlite")  # a cache: row order varies
        and not {"logs", "benchmarks", "work", "parts", "state", ".kept"}
        & set(p.relative_to(root).parts)
    )


def assert_same_results(a: Path, b: Path, resumed_at: int | None = None) -> None:
    """Every result file of b is one of a's, with the same bytes; Parquet tables equal but for
    timing columns. (a may hold more: the whole workflow, where b built some targets.)

    `resumed_at`: b's pretraining resumed from the state saved at that step. The Trainer's logged
    loss averages over the steps since the previous log line, and after a resume that window
    starts at the resume step, so the first loss logged after it is an average over fewer steps.
    """
    files = _result_files(b)
    missing = sorted(set(files) - set(_result_files(a)))
    assert files and not missing, f"not in {a}: {missing}"
    for rel in files:
        if rel.endswith(".parquet"):
            ta, tb = pq.read_table(a / rel), pq.read_table(b / rel)
            assert ta.schema == tb.schema, rel
            for col in ta.column_names:
                if TIMING_COLUMN.search(col):
                    continue
                ca, cb = ta[col].to_pylist(), tb[col].to_pylist()
                if col == "loss" and resumed_at is not None and "step" in ta.column_names:
                    steps = ta["step"].to_pylist()
                    straddle = min((s for s in steps if s > resumed_at), default=None)
                    keep = [i for i, s in enumerate(steps) if s != straddle]
                    ca, cb = [ca[i] for i in keep], [cb[i] for i in keep]
                assert ca == cb, f"{rel}: column {col} differs"
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), f"{rel} differs"


def _kill_pretraining_once_it_saved_state(workdir: Path, extra: list[str]) -> str:
    """Run through SLURM, cancel the pretraining job as its time limit would, return the log.

    `scancel` ends a job the way a time limit does (SIGTERM, then SIGKILL after KillWait).
    """
    out = workdir.parent / "killed_run.log"
    cmd = [sys.executable, "-m", "snakemake", *_slurm_args(["--retries", "0", *extra])]
    with out.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=workdir, env=_env(), stdout=f, stderr=subprocess.STDOUT)
    work = workdir / "results" / "pretrain" / "demo" / "work"
    try:
        job = None
        for _ in range(RUN_TIMEOUT_S * 5):
            if proc.poll() is not None:
                break
            if job is None and any(work.glob("checkpoint-*/trainer_state.json")):
                running = subprocess.run(
                    ["squeue", "--noheader", "--states=RUNNING", "--format=%i|%k|%Z"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                ).stdout
                job = next(
                    (
                        row.split("|")[0]
                        for row in running.splitlines()
                        if row.split("|")[1] == "rule_pretrain_wildcards_demo"
                        and Path(row.split("|")[2]) == workdir
                    ),
                    None,
                )
                if job:
                    subprocess.run(["scancel", job], check=True, timeout=30)
            time.sleep(0.2)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            _cancel_run(out.read_text())
    log = out.read_text()
    assert job, f"pretraining never saved a resume state under {work}:\n{log[-3000:]}"
    assert proc.returncode != 0, f"the cancelled run did not fail:\n{log[-3000:]}"
    return log


# One target per kind of rule (every rule of the Snakefile runs), so the SLURM run stays short.
REPO_TARGETS = [
    "results/tables/ledger.csv",
    "results/figures/rl_dynamics.pdf",
    "results/story_eval/demo-pre-60K.parquet",
    "results/eval/demo-pre-60K.parquet",
]


@pytest.mark.slow
def test_repo_workflow_through_slurm_survives_a_kill_and_equals_a_local_run(
    test_config_run, tmp_path
):
    # The local run is the whole workflow on the same config (built once for the test run).
    args = [*REPO_TARGETS, "--snakefile", str(REPO / "Snakefile"), "--configfile", str(TEST_CONFIG)]
    local, slurm = test_config_run, tmp_path / "slurm"
    slurm.mkdir()

    # First SLURM run: pretraining is cancelled mid-way; starting again resumes it.
    killed_log = _kill_pretraining_once_it_saved_state(slurm, ["--directory", str(slurm), *args])
    killed_jobs = _submitted_jobs(killed_log, _run_uuid(killed_log))
    assert {j.state for j in killed_jobs if j.rule == "pretrain"} == {"CANCELLED"}, killed_jobs
    log, jobs = run_slurm(slurm, ["--directory", str(slurm), *args])
    check_jobs(slurm, log, jobs)
    pretrain_log = (slurm / "results" / "logs" / "pretrain" / "demo.log").read_text()
    resumed = re.search(r"resume from \S*results/pretrain/demo/work/checkpoint-(\d+)", pretrain_log)
    assert resumed, pretrain_log[:2000]

    # The Snakefile tags pretraining as a GPU rule and the corpus rules as CPU rules.
    tagged = {j.rule: j.gpu_tagged for j in killed_jobs + jobs}
    assert tagged["pretrain"] and not tagged["demo_corpus"] and not tagged["tokenizer"], jobs
    assert tagged["rl"] and tagged["story_eval_pre"] and tagged["zero_shot_pre"], jobs
    assert not tagged["demo_eval_data"], jobs
    # Tables and figures are local rules: built where snakemake runs, never submitted.
    assert "table" not in tagged and "figure" not in tagged, jobs
    assert (slurm / "results" / "tables" / "ledger.csv").exists()
    assert_same_results(local, slurm, resumed_at=int(resumed.group(1)))
