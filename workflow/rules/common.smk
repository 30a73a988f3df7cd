# Paths and helpers shared by the stage files. Every path carries every varying factor.
# Self-contained imports: tests include this file from a Snakefile of their own.
import functools
import json
import os

from storyrl.analysis import layout
from storyrl.redact import credentials_to_env
from storyrl.units import checkpoint_name, words_label

RESULTS = "results"

# Each rule's command is `python -m storyrl.cli ...` with the repo on PYTHONPATH, so the same
# code runs in the project's venv, in a rule's conda env (which cannot pip-install the repo;
# snakemake keeps PYTHONPATH there only with --conda-not-block-search-path-envvars, which
# profiles/slurm sets) and in a SLURM job (the job's snakemake reads this file again).
# The variables this file sets (PYTHONPATH, STORYRL_TRACKING, the HF_*_OFFLINE switches) are set
# here for the jobs, not read from the user, so they are no `envvars:` (which asserts that the
# user defined them): set through os.environ.update, which snakemake's lint does not take for a
# read.
_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
os.environ.update(
    PYTHONPATH=os.pathsep.join([workflow.basedir] + [p for p in _paths if p and p != workflow.basedir])
)


def gpu_check(wildcards, resources):
    """The GPU commands' `--require-gpu`, unless compute.allow_cpu: a job that sees no GPU
    stops at once. A param of the job's resources, which snakemake leaves out of its rerun
    decision: where a job may run changes none of its results, so switching allow_cpu reruns
    nothing."""
    return "" if CFG.compute.allow_cpu else "--require-gpu"


def section(obj):
    """A config section as compact JSON: a rule's params, so it reruns when (only) it changes."""
    return json.dumps(obj.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


# Tracking is a side channel that changes no result: the training jobs read it from the
# environment (storyrl/tracking.py), not from a rule's params, so choosing a backend or a progress
# interval reruns no job. Jobs inherit it locally; a SLURM job's snakemake reads this file again.
os.environ.update(STORYRL_TRACKING=section(CFG.tracking))


def corpus_dir(corpus):
    return f"{RESULTS}/corpus/{corpus}"


def ckpt_dir(run_id, words):
    return f"{RESULTS}/pretrain/{run_id}/{checkpoint_name(words)}"


def log_path(rule_name, *parts):
    return f"{RESULTS}/logs/{rule_name}/{os.path.join(*parts) if parts else 'all'}.log"


def bench_path(rule_name, *parts):
    return f"{RESULTS}/benchmarks/{rule_name}/{os.path.join(*parts) if parts else 'all'}.tsv"


# --------------------------------------------------------------------------- RL runs and models
from typing import NamedTuple

from storyrl.config import planned_checkpoints

PLAN = CFG.rl_plan()


def rl_dir(run_id):
    return f"{RESULTS}/rl/{run_id}"


class Model(NamedTuple):
    """A checkpoint that the evaluation rules score."""

    path: str
    inputs: list
    """Files that exist once the checkpoint does (an RL run's summary stands for its folders)."""
    pretrain_words: int
    rl_words: int | None
    """0 for pretraining checkpoints; None: read from the checkpoint (an RL run's final words)."""
    run_id: str
    group: str
    """The evaluation group whose one job scores this model: its pretraining run (the curve of
    milestones) or its RL run (checkpoints and final policy)."""
    label: str
    """The model id after `<group>-pre-` / `<group>-rl-`: what varies inside a group."""


def pre_model_id(pretrain_run, words):
    return f"{pretrain_run}-pre-{words_label(words)}"


def _models():
    out = {}
    for prun in CFG.pretrain.runs:
        for w in CFG.pretrain.milestones:
            out[pre_model_id(prun, w)] = Model(ckpt_dir(prun, w), [ckpt_dir(prun, w)], w, 0, "",
                                               prun, words_label(w))
    for run_id, run in PLAN.items():
        done = [f"{rl_dir(run_id)}/summary.json"]
        for w in planned_checkpoints(run.rl):
            out[f"{run_id}-rl-{words_label(w)}"] = Model(
                f"{rl_dir(run_id)}/checkpoints/{words_label(w)}", done, run.checkpoint, w, run_id,
                run_id, words_label(w))
        out[f"{run_id}-rl-final"] = Model(f"{rl_dir(run_id)}/final", done, run.checkpoint, None,
                                          run_id, run_id, "final")
    return out


MODELS = _models()


def _full_set_models():
    """The paper scores the full sets on the largest RL starting checkpoint (900M-pre) and on
    every final policy; fast sets on every checkpoint."""
    if not PLAN:
        last = CFG.pretrain.milestones[-1]
        return {pre_model_id(p, last) for p in CFG.pretrain.runs}
    top = max(r.checkpoint for r in PLAN.values())
    return {pre_model_id(r.pretrain_run, top) for r in PLAN.values() if r.checkpoint == top} | {
        f"{run_id}-rl-final" for run_id in PLAN
    }


FULL_SET_MODELS = _full_set_models()


def one_of(names):
    """A wildcard constraint that matches exactly these names."""
    import re

    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!)"


def repo_path(path):
    """A relative path from the config: as given if it exists in the run directory, else from
    the repo (config/prompts/..., config/babylm_baselines.yaml), so --directory elsewhere works."""
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(workflow.basedir, path)


def teacher_json(teacher: dict):
    """The teacher section a job gets: the template as a path from here, and its file's sha256
    (unless the config pins one), so a job reads the rubric it was planned with and an edited
    rubric changes the params, which reruns the jobs."""
    template = repo_path(teacher["template"])
    sha = teacher.get("template_sha256") or _file_sha256(template)
    teacher = {**teacher, "template": template, "template_sha256": sha}
    if teacher.get("openai"):
        # snakemake prints command lines (-p, failed jobs): a password in the URL reaches the
        # job through the environment instead (jobs inherit it; a SLURM job's snakemake sets it
        # again when it reads this file).
        url, env = credentials_to_env(teacher["openai"]["base_url"])
        os.environ.update(env)
        teacher["openai"] = {**teacher["openai"], "base_url": url}
    return json.dumps(teacher, sort_keys=True)


@functools.cache
def _file_sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# Conda environments of the rules (used with --sdm conda; relative to workflow/rules/).
CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/gpu.yaml"


# Jobs never download: the teacher is a local folder (storyrl.config.check_teacher_weights, at
# planning time) and the student is built from config. Offline, a stray hub lookup fails at once
# instead of hanging on a compute node without internet or filling a shared cache per job. Every
# job inherits this: locally, and on SLURM through the job's own snakemake, which reads this file.
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
