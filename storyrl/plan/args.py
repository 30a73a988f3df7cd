"""Each job's command-line arguments, from its plan: the config sections it gets as compact JSON
(a rule's params, so a job reruns when, and only when, what it reads changes) and its paths."""

import functools
import hashlib
import json
import shlex

from storyrl.core import layout
from storyrl.core.babylm_spec import GLUE_TASKS
from storyrl.core.redact import credentials_to_env, redact_data
from storyrl.plan import Plan

OFFICIAL_WHERE = ("path", "python", "data_path")
OFFICIAL_GLUE = (
    "glue",
    "learning_rate",
    "batch_size",
    "big_batch_size",
    "epochs",
    "wsc_epochs",
    "seed",
    "sequence_length",
    "take_final",
    "finetune_path",
)
"""The fields of the official section the GLUE jobs read."""


def compact(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def section(obj) -> str:
    """A config section as compact JSON."""
    return compact(obj.model_dump(mode="json"))


@functools.cache
def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def teacher_json(plan: Plan, teacher: dict) -> str:
    """The teacher section a job gets: the template as a path from here, and its file's sha256
    (unless the config pins one), so a job reads the rubric it was planned with and an edited
    rubric changes the params, which reruns the jobs.

    snakemake prints command lines (-p, failed jobs): a password in an OpenAI URL reaches the
    job through the environment instead, which `teacher_env` gives."""
    template = plan.repo_path(teacher["template"])
    sha = teacher.get("template_sha256") or file_sha256(template)
    teacher = {**teacher, "template": template, "template_sha256": sha}
    if teacher.get("openai"):
        url, _ = credentials_to_env(teacher["openai"]["base_url"])
        teacher["openai"] = {**teacher["openai"], "base_url": url}
    return json.dumps(teacher, sort_keys=True)


def teacher_env(plan: Plan) -> dict[str, str]:
    """The environment variables that carry the credentials of every teacher URL of the plan
    (the jobs inherit them; a SLURM job's snakemake sets them again when it reads the plan)."""
    teachers = [plan.cfg.teacher.model_dump(mode="json")]
    teachers += [r.teacher for r in plan.rl_runs.values()]
    teachers += [t.model_dump(mode="json") for t in plan.agreement.values()]
    env = {}
    for t in teachers:
        if t.get("openai"):
            env.update(credentials_to_env(t["openai"]["base_url"])[1])
    return env


def rl_params(plan: Plan, run_id: str) -> dict[str, str]:
    run = plan.rl_runs[run_id]
    return {
        "section": section(run.rl),
        "teacher": teacher_json(plan, run.teacher),
        "reward": json.dumps(run.reward, sort_keys=True),
    }


def pack_run(plan: Plan, run_id: str) -> str:
    """One run of a pack, as `storyrl rl pack --run` takes it: the arguments of its rule `rl`
    (the same params and inputs), as one JSON object."""
    sections = {k: json.loads(v) for k, v in rl_params(plan, run_id).items()}
    return json.dumps(
        {
            "run_id": run_id,
            **sections,
            **plan.rl_inputs(run_id),
            "pretrain_words": plan.rl_runs[run_id].checkpoint,
            "output": plan.rl_dir(run_id),
            "log": plan.log("rl", run_id),
            "teacher_cache": plan.path("teacher_cache_path", run_id),
        },
        sort_keys=True,
    )


def pack_runs(plan: Plan, ids: list[str]) -> str:
    """Pre-quoted: one --run JSON per run; a change to any run's settings reruns the pack."""
    return " ".join(f"--run {shlex.quote(pack_run(plan, r))}" for r in ids)


def story_eval_rl(plan: Plan) -> str:
    """Only what story evaluation reads of the rl section: a change to the rest (PPO settings,
    budget) reruns the RL runs' evaluations through their checkpoints, but not those of the
    pretraining checkpoints."""
    return compact(plan.cfg.rl.model_dump(mode="json", include={"prompts", "sampling"}))


def _ids(plan: Plan, model_id: str) -> dict:
    m = plan.models[model_id]
    return {
        "model": m.path,
        "model_id": model_id,
        "pretrain_words": m.pretrain_words,
        "rl_words": m.rl_words,
    }


def _models_json(models: list[dict]) -> str:
    # Keys in the order written: the rules' params have always been this text, and a new text
    # would rerun every evaluation of an existing results folder.
    return json.dumps(models, separators=(",", ":"))


def story_list(plan: Plan, kind: str, group: str) -> str:
    return _models_json(
        [
            {
                **_ids(plan, mid),
                "run_id": plan.models[mid].run_id,
                "output": plan.path("story_eval_path", mid),
            }
            for mid in plan.group_models(kind, group)
        ]
    )


def zero_shot_list(plan: Plan, kind: str, group: str) -> str:
    return _models_json(
        [
            {
                **_ids(plan, mid),
                "variants": ["fast", "full"] if mid in plan.full_set else ["fast"],
                "parquet": plan.path("eval_path", mid),
                "output_dir": plan.path("zero_shot_dir", mid),
            }
            for mid in plan.group_models(kind, group)
        ]
    )


def model_args(plan: Plan, model_id: str) -> str:
    m = plan.models[model_id]
    words = [("--pretrain-words", m.pretrain_words), ("--rl-words", m.rl_words)]
    return " ".join(f"{flag} {w}" for flag, w in words if w is not None)


def official_section(plan: Plan, *keys: str) -> str:
    """Only the fields a job uses, so that e.g. turning AoA on does not rerun GLUE."""
    return json.dumps(
        plan.cfg.official.model_dump(mode="json", include=set(OFFICIAL_WHERE + keys)),
        sort_keys=True,
    )


def aoa_checkpoint_args(checkpoints) -> str:
    return " ".join(f"--checkpoint {w} {mid} {path}" for w, mid, path in checkpoints)


def submission_args(plan: Plan, model_id: str) -> str:
    s, r = plan.submissions[model_id], plan.results
    off = plan.cfg.official
    args = [
        f"--final {plan.models[model_id].path} --track {s.track} --zero-shot-data {plan.eval_data}"
    ]
    args.append(f"--official-data {off.data()} --zero-shot {layout.zero_shot_dir(r, model_id)}")
    args.append(
        f"--reading {layout.official_dir(r, model_id, 'reading')} --aoa {s.aoa[0]} {s.aoa[1]}"
    )
    args += [f"--glue {t} {layout.official_dir(r, model_id, f'glue/{t}')}" for t in GLUE_TASKS]
    args += [
        f"--revision {name} {plan.models[mid].path} {layout.zero_shot_dir(r, mid)}"
        f" {layout.official_dir(r, mid, 'reading_fast')}"
        for name, mid in s.revisions
    ]
    return " ".join(args)


def agreement_params(plan: Plan, teacher: str) -> dict[str, str]:
    t = plan.agreement[teacher].model_dump(mode="json")
    a = plan.cfg.agreement
    return {
        "teacher": teacher_json(plan, t),
        "sample": json.dumps({"stories_per_run": a.stories_per_run, "seed": a.seed}),
    }


def run_config_json(plan: Plan) -> str:
    """The run's validated config (`tracking`, which changes no result, left out), redacted:
    snakemake prints this command line."""
    return compact(redact_data(plan.cfg.model_dump(mode="json", exclude={"tracking"})))


def tracking_env(plan: Plan) -> dict[str, str]:
    """Tracking is a side channel that changes no result: the training jobs read it from the
    environment (storyrl/training/tracking.py), not from a rule's params, so choosing a backend or a
    progress interval reruns no job."""
    return {"STORYRL_TRACKING": section(plan.cfg.tracking)}


def analysis_args(input) -> str:
    """The input flags of a table or figure job, each path shell-quoted (a path may hold a
    space)."""
    from storyrl.analysis.registry import INPUTS

    flags = []
    for key in INPUTS:
        if key in input.keys() and key != "baselines":
            flags.append(f"--{key.replace('_', '-')} " + " ".join(map(shlex.quote, input[key])))
    if "baselines" in input.keys():
        flags.append(f"--baselines {shlex.quote(str(input.baselines))}")
    return " ".join(flags)


def pretrain_launcher(resources) -> str:
    """python for one GPU (or the CPU), torchrun with one process per GPU for more (one node)."""
    gpus = int(getattr(resources, "gpu", 0) or 0)
    if gpus <= 1:
        return "python"
    return f"python -m torch.distributed.run --standalone --nproc_per_node {gpus}"
