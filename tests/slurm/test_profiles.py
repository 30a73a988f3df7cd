"""The snakemake profiles: how they combine, and what the SLURM one asks of the cluster.

Snakemake loads profiles/default/ as the workflow profile on every run from the repo root, also
under `--profile profiles/slurm`, and its top-level keys replace the same keys of the SLURM
profile wholesale; so the two must not share keys.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yte
from packaging.requirements import Requirement

from helpers import paper_weights

REPO = Path(__file__).resolve().parents[2]


def _profile(name: str) -> dict:
    """The profile as snakemake reads it (YTE expressions evaluated, if the file uses them)."""
    path = REPO / "profiles" / name / "config.yaml"
    with path.open() as f:
        return yte.process_yaml(f, require_use_yte=True)


def test_default_and_slurm_profiles_share_no_keys():
    default, slurm = _profile("default"), _profile("slurm")
    shared = set(default) & set(slurm)
    assert not shared, f"profiles/default would silently override profiles/slurm on: {shared}"


def test_slurm_profile_essentials():
    slurm = _profile("slurm")
    assert slurm["executor"] == "slurm"
    # No accounting storage on small clusters and in CI: sacct cannot answer.
    assert slurm["slurm-status-command"] == "squeue"
    assert slurm["retries"] >= 1 and slurm["jobs"] >= 1
    assert {"runtime", "mem_mb"} <= set(slurm["default-resources"])
    # GPUs come from the rules' `gpu` resource only; a default would put every job on a GPU.
    assert "gpu" not in slurm["default-resources"]
    for rule, res in slurm["set-resources"].items():
        assert "gpu" not in res and "gres" not in res, rule


def test_slurm_profile_reads_account_and_partition_from_the_environment(monkeypatch):
    monkeypatch.delenv("STORYRL_SLURM_ACCOUNT", raising=False)
    monkeypatch.delenv("STORYRL_SLURM_PARTITION", raising=False)
    plain = _profile("slurm")["default-resources"]
    assert "slurm_account" not in plain and "slurm_partition" not in plain
    monkeypatch.setenv("STORYRL_SLURM_ACCOUNT", "proj42")
    monkeypatch.setenv("STORYRL_SLURM_PARTITION", "short")
    res = _profile("slurm")["default-resources"]
    assert res["slurm_account"] == "proj42" and res["slurm_partition"] == "short"


def test_partition_example_parses_with_the_plugin():
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    parts = {p.name: p.limits for p in read_partition_file(REPO / "profiles/slurm/partitions.yaml")}
    assert parts["gpu"].max_gpu > 0 and parts["cpu"].max_gpu == 0


def test_pinned_slurm_plugin_is_installed_and_snakemake_sees_its_options():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    req = Requirement(extra["slurm"][0])
    lock = (REPO / "requirements" / "lock-cpu.txt").read_text()
    locked = re.search(rf"^{re.escape(req.name)}==(\S+)$", lock, re.M).group(1)
    # the lock's version is installed, and pyproject's range allows it
    assert importlib.metadata.version(req.name) == locked
    assert req.specifier.contains(locked)
    # The profile's option names exist in this plugin version (a renamed option would only
    # fail at submission time on a cluster).
    helptext = subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for key in _profile("slurm"):
        if key.startswith("slurm-"):
            assert f"--{key}" in helptext, f"snakemake does not know --{key}"


def _snakemake(tmp_path, *args) -> str:
    """The repo's workflow on the paper's config, run in tmp_path so that nothing lands in the
    checkout."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            str(REPO / "config/paper.yaml"),
            str(paper_weights(tmp_path)),
            *args,
        ],
        # Planned without conda deployment: no conda here (tests/slurm/test_cluster.py checks it).
        env=dict(os.environ, STORYRL_SLURM_SDM="none"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_profile_rule_names_exist_in_the_paper_workflow(tmp_path):
    # snakemake silently ignores set-resources for a rule it does not know.
    rules = set(_snakemake(tmp_path, "--list-rules").split())
    slurm = _profile("slurm")
    for key in ("set-resources", "set-threads"):
        unknown = set(slurm[key]) - rules
        assert not unknown, f"profiles/slurm {key} names rules the workflow lacks: {unknown}"


def test_paper_plan_gives_gpu_jobs_a_gpu_and_a_runtime_of_their_own(tmp_path):
    # The paper on the cluster, planned (-n) with the SLURM profile and the workflow profile.
    plan = _snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"))
    jobs = []  # (rule, resources line) of each planned job
    rule = None
    for line in plan.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule = line.split()[1][:-1]
        elif line.startswith("resources:") and rule:
            jobs.append((rule, line))
            rule = None
    default_runtime = f"runtime={_profile('slurm')['default-resources']['runtime']}"
    gpu_jobs = [(r, res) for r, res in jobs if re.search(r"\bgpu=[1-9]", res)]
    assert any(r.startswith("pretrain") for r, _ in gpu_jobs), jobs
    for r, res in gpu_jobs:
        # A GPU job at paper scale left on the default runtime would be killed early, again and
        # again: set its runtime in profiles/slurm (set-resources) or in the rule.
        assert not re.search(rf"\b{default_runtime}\b", res), (r, res)
    for r, res in jobs:
        if r in ("demo_corpus", "subset", "tokenizer", "tokens"):
            assert not re.search(r"\bgpu=", res), (r, res)


_TWO_GPU_JOBS = """
rule all:
    input: "a.txt", "b.txt"
rule job:
    output: "{x}.txt"
    resources: gpu=1
    shell: "date +%s.%N > {output}; sleep 3; date +%s.%N >> {output}"
"""


def _overlap(tmp_path, *args) -> bool:
    """Whether two GPU-tagged jobs ran at the same time under the repo's workflow profile."""
    import shutil

    shutil.copytree(REPO / "profiles" / "default", tmp_path / "profiles" / "default")
    (tmp_path / "Snakefile").write_text(_TWO_GPU_JOBS)
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    (a0, a1), (b0, b1) = (
        [float(x) for x in (tmp_path / f).read_text().split()] for f in ("a.txt", "b.txt")
    )
    return a0 < b1 and b0 < a1


def test_gpu_jobs_share_the_cores_where_there_is_no_gpu(tmp_path):
    import glob

    gpu_here = bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/kfd"))
    # No GPU: the tag limits nothing (CPU jobs); a GPU: one GPU job at a time.
    assert _overlap(tmp_path / "auto") != gpu_here
    assert not _overlap(tmp_path / "one", "--resources", "gpu=1")


def test_a_dry_run_with_the_slurm_profile_needs_no_conda(tmp_path):
    # A dry run deploys no software; planning on a login node without conda must work.
    from helpers import TEST_CONFIG

    env = {k: v for k, v in os.environ.items() if k != "STORYRL_SLURM_SDM"}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "conda").exists()
    )
    args = ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(TEST_CONFIG)]
    args += ["--profile", str(REPO / "profiles" / "slurm")]
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "-n"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "conda" not in out.stderr.lower()
