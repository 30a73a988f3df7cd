"""The paper in miniature: config/paper.yaml with only its sizes shrunk, run to the end with
`snakemake --profile profiles/slurm` on a real SLURM (CI's one-node cluster, .ci/slurm-up) with
the real vLLM engine (vLLM's CPU build, `make vllm-venv`) as the teacher and the second judge.

Every section and setting of the paper config stays: the vllm teacher (join concat, temperature
0.2, max_tokens 6, the paper parse, on_failure default), the word-budget ledger and PPO's paper
semantics, the authors_regex statistic and the paper's figure units, story evaluation, zero-shot
evaluation and the agreement judge on vllm, one RL run per GPU job (the paper config packs
nothing). What shrinks (SIZES below): the corpus (the demo corpus saved as an HF dataset, the
paper's `hf` format), GPT-2 (one layer), the milestones, RL steps and stories, and the teacher
(a random two-layer Llama with a chat template, built here) with a Jinja2 rubric of the authors'
shape. The test checks that the miniature plans the paper's rules with the paper's edges, that
every job went through sbatch and finished, and that every table and figure is built.

Run:  STORYRL_VLLM_PYTHON=.venv-vllm/bin/python pytest tests/slurm/test_paper_mini.py --basetemp=DIR
(DIR keeps the config, the results and snakemake's log). Skipped, saying why, without SLURM or
the vLLM venv, except under STORYRL_REQUIRE_SLURM=1 / STORYRL_REQUIRE_VLLM=1 (.ci/run).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import AUTHORS_SHAPE
from test_slurm import (
    _cancel_run,
    _run_uuid,
    _slurm_args,
    _submitted_jobs,
    check_jobs,
    slurm_unavailable,
)

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "config" / "paper.yaml"
VLLM_PYTHON = Path(os.environ.get("STORYRL_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
RUN_TIMEOUT_S = 1800

_reason = slurm_unavailable()
if _reason is None and not VLLM_PYTHON.exists():
    _reason = f"no vLLM venv at {VLLM_PYTHON}: `make vllm-venv`"
    if os.environ.get("STORYRL_REQUIRE_VLLM") == "1":  # set by .ci/run
        raise RuntimeError(f"STORYRL_REQUIRE_VLLM=1 but {_reason}")
pytestmark = pytest.mark.skipif(_reason is not None, reason=_reason or "")

# The paper's sizes, shrunk; nothing else of config/paper.yaml changes but PATHS and CPU_ONLY.
SIZES = {
    "tokenizer": {"vocab_size": 500},
    "models": {"gpt2-small": {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 128}},
    "pretrain": {
        "training": {
            "batch_size": 16,
            "micro_batch_size": 8,
            "epochs": 1,
            "log_every": 5,
            "save_every": 20,
        },
        "milestones": ["10K", "30K", "60K"],
    },
    "rl": {
        "batch_size": 8,
        "sampling": {"max_new_tokens": 16},
        "budget": 180,
        "checkpoint_every": 150,
    },
    # Two runs instead of eight: one from a smaller checkpoint, one from the largest.
    "rl_runs": [{"checkpoint": "30K"}, {"checkpoint": "60K"}],
    "story_eval": {"n_stories": 8, "batch_size": 8},
    "analysis": {"window_steps": 2, "smooth_sigma": 1},
    "agreement": {"stories_per_run": 10},
}
SIZE_KEYS = {
    "tokenizer.vocab_size",
    "models.gpt2-small.n_layer",
    "models.gpt2-small.n_head",
    "models.gpt2-small.n_embd",
    "models.gpt2-small.n_positions",
    "pretrain.training.batch_size",
    "pretrain.training.micro_batch_size",
    "pretrain.training.epochs",
    "pretrain.training.log_every",
    "pretrain.training.save_every",
    "pretrain.milestones",
    "rl.batch_size",
    "rl.sampling.max_new_tokens",
    "rl.budget",
    "rl.checkpoint_every",
    "rl_runs",
    "story_eval.n_stories",
    "story_eval.batch_size",
    "analysis.window_steps",
    "analysis.smooth_sigma",
    "agreement.stories_per_run",
}
# Settings a GPU node gives and this CPU node cannot, and why each changes:
CPU_ONLY = {
    # The one-node SLURM's GPU is a gres entry backed by /dev/null: SLURM schedules the gpu=1
    # jobs (they still ask for and get --gpus=1), but torch sees no CUDA device in them, and
    # the GPU rules' --require-gpu would stop them at once.
    "compute": {"allow_cpu": True},
    # A GiB budget is measured against the CUDA device's memory; vLLM's CPU build takes its KV
    # cache from VLLM_CPU_KVCACHE_SPACE (VLLM_ENV) instead.
    "teacher": {"vllm": {"gpu_memory_gib": None}},
    "agreement": {"teachers": {"second": {"vllm": {"gpu_memory_gib": None}}}},
}
CPU_ONLY_KEYS = {
    "compute.allow_cpu",
    "teacher.vllm.gpu_memory_gib",
    "agreement.teachers.second.vllm.gpu_memory_gib",
}
# vLLM's CPU build: a 1 GiB KV cache (not a share of the machine's RAM), no graph compilation
# (minutes on 2 cores), the engine in the job's process (a start in seconds, not 20-45 s).
# One CPU a job (the profile asks for 2-8, capped at the node's 2): snakemake sets a job's
# OMP_NUM_THREADS to its threads, and on a busy 2-core host two spinning OpenMP threads cost 4x
# the CPU time of one (the pretraining job: 13 s of CPU with one thread, 60 s with two) for
# models this small.
JOB_THREADS = 1
VLLM_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_CI_ENV": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_TARGET_DEVICE": "cpu",
}


def leaves(d: dict, prefix: str = "") -> set[str]:
    """Dotted keys of a nested override; a list is one value (rl_runs, milestones)."""
    out = set()
    for k, v in d.items():
        key = f"{prefix}{k}"
        out |= leaves(v, key + ".") if isinstance(v, dict) else {key}
    return out


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(base[k], v) if isinstance(v, dict) and k in base else v
    return out


def paths(work: Path) -> dict:
    """What the paper config asks the user to set (its placeholder paths), built here: the same
    in the paper's plan and in the miniature."""
    import datasets

    from storyrl.data import demo_corpus, demo_eval
    from storyrl.testing import build_tiny_chat_model

    text = work / "demo-text"
    demo_corpus.generate(text, words=75_000, seed=0, split="train")
    rows = [
        line
        for f in sorted((text / "train").glob("*.train"))
        for line in f.read_text(encoding="utf-8").splitlines()
    ]
    corpus = work / "babylm-mini"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": rows})}).save_to_disk(
        str(corpus)
    )
    evaluation_data = work / "evaluation_data"
    demo_eval.generate(evaluation_data, seed=0, n_full=40, n_fast=20)
    # Head size 32: vLLM's CPU attention rejects 16. Replies of digits: the paper's regex reads
    # scores only from replies of its form, and a random model's hold none.
    teacher = build_tiny_chat_model(
        work / "Llama-mini", hidden_size=64, heads=2, seed=0, digits=True
    )
    second = build_tiny_chat_model(
        work / "Llama-mini-2", hidden_size=64, heads=2, seed=1, digits=True
    )
    rubric = work / "teacher_prompt.md"
    rubric.write_text(AUTHORS_SHAPE)
    return {
        "corpora": {"babylm": {"path": str(corpus)}},
        "teacher": {
            "model": str(teacher),
            "template": str(rubric),
            "template_sha256": hashlib.sha256(rubric.read_bytes()).hexdigest(),
        },
        "zero_shot": {"data_path": str(evaluation_data)},
        "agreement": {"teachers": {"second": {"model": str(second)}}},
    }


def _env() -> dict[str, str]:
    env = dict(os.environ, **VLLM_ENV)
    # The rules' `python -m storyrl.cli` is the vLLM venv's (PATH); snakemake and its SLURM
    # plugin are this venv's (sys.executable, which the jobs' own snakemake reuses): the plugin
    # needs a numpy that vLLM 0.30 does not allow.
    env["PATH"] = f"{VLLM_PYTHON.parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("STORYRL_SLURM_PARTITION", None)
    env.pop("SNAKEMAKE_SLURM_PARTITIONS", None)
    env["STORYRL_SLURM_SDM"] = "none"  # no conda on the test cluster
    return env


def _snakemake(work: Path, configs: list[Path], args: list[str], timeout: float) -> str:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--configfile",
        *map(str, configs),
        *args,
    ]
    # To a file, so that a run cut off by the timeout leaves its log (and its SLURM run id).
    path = work / "snakemake.log"
    with path.open("w") as out:
        try:
            code = subprocess.run(
                cmd, cwd=work, env=_env(), stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    log = path.read_text()
    if code != 0:
        _cancel_run(log)
        why = f"did not finish in {timeout} s" if code is None else f"failed ({code})"
        raise AssertionError(f"snakemake {why}: {' '.join(cmd)}\n{log[-8000:]}")
    return log


def slurm_args() -> list[str]:
    """test_slurm's flags (the profile with the node's limits), each rule's threads at
    JOB_THREADS."""
    args, threads = [], False
    for a in _slurm_args([]):
        if a.startswith("--"):
            threads = a == "--set-threads"
        elif threads:
            a = f"{a.split('=')[0]}={JOB_THREADS}"
        args.append(a)
    return args


def dag(work: Path, configs: list[Path]) -> tuple[list[tuple[str, str]], set[tuple[str, str]]]:
    """The plan's jobs as (rule, wildcards) and its edges between rules, from `snakemake --dag`
    (one node a job, labelled with its rule and wildcards)."""
    dot = _snakemake(work, configs, ["--dag"], 300)
    jobs = {}
    for node, label in re.findall(r'^\s*(\d+)\[label = "([^"]*)"', dot, re.M):
        rule, _, wildcards = label.partition("\\n")
        jobs[node] = (rule, wildcards)
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)
    return list(jobs.values()), {(jobs[a][0], jobs[b][0]) for a, b in edges}


def outputs(jobs: list[tuple[str, str]]) -> set[str]:
    """The files of the plan's table and figure jobs (their wildcard `name`), in every format."""
    exts = {"table": ("csv", "md", "tex"), "figure": ("pdf", "png")}
    return {
        f"results/{rule}s/{wildcards.removeprefix('name: ')}.{ext}"
        for rule, wildcards in jobs
        if rule in exts
        for ext in exts[rule]
    }


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    work = tmp_path_factory.mktemp("paper-mini")
    paper = yaml.safe_load(PAPER.read_text())
    (work / "paths.yaml").write_text(yaml.safe_dump(paths(work)))
    over = merged(SIZES, CPU_ONLY)
    (work / "paper-mini.yaml").write_text(yaml.safe_dump(merged(paper, over), sort_keys=False))
    return work


def test_the_miniature_changes_only_sizes_and_cpu_only_settings():
    assert leaves(SIZES) == SIZE_KEYS
    assert leaves(CPU_ONLY) == CPU_ONLY_KEYS
    paper = yaml.safe_load(PAPER.read_text())
    for key in SIZE_KEYS | CPU_ONLY_KEYS:  # each names a key the paper config sets
        node = paper
        for part in key.split("."):
            node = node[part]
    mini = merged(paper, merged(SIZES, CPU_ONLY))
    # The paper settings the miniature is about are still the paper's.
    t = mini["teacher"]
    assert (t["backend"], t["join"], t["temperature"], t["max_tokens"]) == (
        "vllm",
        "concat",
        0.2,
        6,
    )
    assert (t["parse"], t["on_failure"]) == ("paper", "default")
    assert mini["analysis"]["score_statistic"] == "authors_regex"
    assert mini["corpora"]["babylm"]["format"] == "hf"
    assert mini["agreement"]["teachers"]["second"]["backend"] == "vllm"
    assert mini["rl_sharing"]["runs_per_gpu"] == paper["rl_sharing"]["runs_per_gpu"]


def test_the_paper_in_miniature_on_slurm(mini):
    work = mini
    paper_plan = [PAPER, work / "paths.yaml"]
    mini_plan = [work / "paper-mini.yaml", work / "paths.yaml"]
    paper_jobs, paper_edges = dag(work, paper_plan)
    mini_jobs, mini_edges = dag(work, mini_plan)
    paper_rules = {rule for rule, _ in paper_jobs}
    assert {rule for rule, _ in mini_jobs} == paper_rules
    assert mini_edges == paper_edges
    # Every table and figure of the paper's plan, and only those.
    built = outputs(paper_jobs)
    assert outputs(mini_jobs) == built
    # The paper's plan: training, every evaluation and the second judge on a GPU node.
    assert {"pretrain", "rl", "story_eval_rl", "zero_shot_rl", "teacher_agreement_gpu"} <= (
        paper_rules
    )
    assert {"results/tables/teacher_agreement.csv", "results/figures/rl_dynamics.pdf"} <= built

    start = time.monotonic()
    log = _snakemake(work, mini_plan, slurm_args(), RUN_TIMEOUT_S)
    wall = time.monotonic() - start
    uuid = _run_uuid(log)
    assert uuid, log[-3000:]
    jobs = _submitted_jobs(log, uuid)
    # Every job went through sbatch and completed; gpu=1 reached SLURM as on a cluster.
    check_jobs(work, log, jobs)
    ran = {j.rule for j in jobs} | set(re.findall(r"^\s*localrule (\S+):$", log, re.M))
    assert ran == paper_rules, ran ^ paper_rules
    assert any(j.gpu_tagged for j in jobs) and any(not j.gpu_tagged for j in jobs)
    assert "steps (100%) done" in log
    for path in sorted(built):
        assert (work / path).stat().st_size > 0, path
    # The teacher and the judge were the vLLM engine.
    for rule in ("rl", "agreement"):
        logs = list((work / "results" / "logs" / rule).glob("*.log"))
        assert logs and all("Initializing a V1 LLM engine" in f.read_text() for f in logs), rule
    print(
        f"paper-mini: {len(jobs)} SLURM jobs, {len(built)} table/figure files, {wall:.0f} s, "
        f"load {os.getloadavg()}"
    )
