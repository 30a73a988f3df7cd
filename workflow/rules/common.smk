# The plan (storyrl.plan) and what every stage file shares. The rules are declarations over the
# plan: which jobs exist, their paths and the config sections each gets all come from `P`.
# Self-contained imports: tests include this file from a Snakefile of their own.
import json
import os
import shlex

from storyrl.plan import Plan, one_of, pre_model_id
from storyrl.plan import args, targets

RESULTS = "results"
P = Plan.from_config(CFG, RESULTS, workflow.basedir)

# Each rule's command is `python -m storyrl.cli ...` with the repo on PYTHONPATH, so the same
# code runs in the project's venv, in a rule's conda env (which cannot pip-install the repo;
# snakemake keeps PYTHONPATH there only with --conda-not-block-search-path-envvars, which
# profiles/slurm sets) and in a SLURM job (the job's snakemake reads this file again).
# The variables this file sets are set here for the jobs, not read from the user, so they are no
# `envvars:` (which asserts that the user defined them): set through os.environ.update, which
# snakemake's lint does not take for a read.
# - STORYRL_TRACKING: tracking changes no result, so it reaches the jobs outside their params.
# - A teacher URL's credentials: snakemake prints command lines, so they travel in variables.
# - The HF_*_OFFLINE switches: jobs never download (the teacher is a local folder, checked at
#   planning time; the student is built from config). Offline, a stray hub lookup fails at once
#   instead of hanging on a compute node without internet.
_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
os.environ.update(
    PYTHONPATH=os.pathsep.join([workflow.basedir] + [p for p in _paths if p and p != workflow.basedir]),
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    **args.tracking_env(P),
    **args.teacher_env(P),
)

# The GPU commands' `--require-gpu`, unless compute.allow_cpu: a job that sees no GPU stops at
# once. A param of the job's resources, which snakemake leaves out of its rerun decision: where
# a job may run changes none of its results, so switching allow_cpu reruns nothing.
gpu_check = lambda wildcards, resources: "" if CFG.compute.allow_cpu else "--require-gpu"

# Conda environments of the rules (used with --sdm conda; relative to workflow/rules/).
CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/gpu.yaml"
