"""The files a plan makes: each stage's outputs, the default target (`all`), the inputs of every
table and figure, and what a leaderboard submission reads."""

from storyrl.analysis.registry import KINDS, REGISTRY, buildable
from storyrl.config import ConfigError
from storyrl.core import layout
from storyrl.core.babylm_spec import GLUE_TASKS
from storyrl.plan import Plan


def pretrain_outputs(plan: Plan) -> list[str]:
    cfg = plan.cfg.pretrain
    return [plan.ckpt_dir(run_id, w) for run_id in cfg.runs for w in cfg.milestones]


def rl_outputs(plan: Plan) -> list[str]:
    return [plan.path("summary_path", run_id) for run_id in plan.rl_runs]


def eval_outputs(plan: Plan) -> list[str]:
    return [plan.path("story_eval_path", m) for m in plan.models] + [
        plan.path("eval_path", m) for m in plan.models
    ]


def official_outputs(plan: Plan) -> list[str]:
    off = plan.official
    names = [
        *off.models,
        *(f"{r}-rl-aoa" for r in off.aoa_rl_runs),
        *(f"{r}-aoa" for r in off.aoa_runs),
    ]
    return [plan.path("official_eval_path", n) for n in names]


def submission_outputs(plan: Plan) -> list[str]:
    return [plan.path("submission_path", m) for m, s in plan.submissions.items() if not s.lacking]


def agreement_outputs(plan: Plan) -> list[str]:
    return [plan.path("agreement_path", t, r) for t in plan.agreement for r in plan.rl_runs]


def analysis_files(plan: Plan) -> dict[str, list[str]]:
    """The files of each analysis input (a field of layout.Inputs) that this plan produces."""
    out = {
        "steps": [plan.path("steps_path", r) for r in plan.rl_runs],
        "rollouts": [plan.path("rollouts_path", r) for r in plan.rl_runs],
        "summaries": rl_outputs(plan),
        "story_eval": [plan.path("story_eval_path", m) for m in plan.models],
        "eval": [plan.path("eval_path", m) for m in plan.models] + official_outputs(plan),
        "pretrain_logs": [plan.path("pretrain_log_path", r) for r in plan.cfg.pretrain.runs],
        "agreement": agreement_outputs(plan),
    }
    if plan.cfg.analysis.baselines:
        out["baselines"] = [plan.repo_path(plan.cfg.analysis.baselines)]
    return out


def buildable_targets(plan: Plan, kind: str) -> list[str]:
    """Targets whose required inputs this plan produces (no RL runs: no RL figures)."""
    return buildable(kind, [k for k, v in analysis_files(plan).items() if v])


def analysis_inputs(plan: Plan, kind: str, name: str) -> dict[str, list[str]]:
    wanted = REGISTRY[kind, name].inputs
    return {k: v for k, v in analysis_files(plan).items() if k in wanted}


def analysis_outputs(plan: Plan) -> list[str]:
    return [
        str(p)
        for kind in KINDS
        for n in buildable_targets(plan, kind)
        for p in REGISTRY[kind, n].paths(plan.results)
    ] + [str(layout.config_path(plan.results))]


def all_outputs(plan: Plan) -> list[str]:
    """Everything the config asks for."""
    return [
        *pretrain_outputs(plan),
        *rl_outputs(plan),
        *eval_outputs(plan),
        *official_outputs(plan),
        *submission_outputs(plan),
        *agreement_outputs(plan),
        *analysis_outputs(plan),
    ]


def submission_inputs(plan: Plan, model_id: str) -> dict:
    """What a submission reads; a ConfigError saying what this config lacks to make it."""
    s, r = plan.submissions[model_id], plan.results
    target = plan.path("submission_path", model_id)
    if s.lacking:
        raise ConfigError(f"{target}: this config does not make " + "; ".join(s.lacking))
    revisions = [mid for _, mid in s.revisions]
    return dict(
        zero_shot=[
            str(layout.zero_shot_dir(r, mid)) for mid in dict.fromkeys([model_id, *revisions])
        ],
        glue=[str(layout.official_dir(r, model_id, f"glue/{t}")) for t in GLUE_TASKS],
        reading=str(layout.official_dir(r, model_id, "reading")),
        reading_fast=[str(layout.official_dir(r, mid, "reading_fast")) for mid in revisions],
        aoa=s.aoa[0],
        data=[] if plan.cfg.zero_shot.data_path else plan.eval_data,
    )


def default_target(plan: Plan) -> list[str]:
    """The files of `all_outputs` that no other planned job reads. Requesting these makes the
    same jobs as requesting everything (each file left out is an input of a job that makes one
    of them), and keeps the `all` job's listing, in `snakemake -n`, to the results' ends."""
    read = {
        f
        for kind in KINDS
        for n in buildable_targets(plan, kind)
        for files in analysis_inputs(plan, kind, n).values()
        for f in files
    }
    if read:
        read.add(str(layout.config_path(plan.results)))
    # Every milestone and every RL run is read by its evaluation group's jobs, whose outputs
    # (eval_outputs) are always part of the target.
    read |= set(pretrain_outputs(plan)) | set(rl_outputs(plan))
    return [f for f in all_outputs(plan) if f not in read]
