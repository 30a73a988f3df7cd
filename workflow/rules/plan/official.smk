# The official rules' plan (official.smk): which models and runs the official pipeline's rules take.

from storyrl.babylm_spec import aoa_steps

OFFICIAL = CFG.official


def _table_models():
    """The BabyLM table's models (storyrl.analysis.tables.babylm_table): the full-set
    pretraining checkpoint(s), and the final policies from the largest RL start of seed
    analysis.paper_seed (all seeds where no run has it)."""
    pre = {m for m in FULL_SET_MODELS if not MODELS[m].run_id}
    if not PLAN:
        return pre
    top = max(r.checkpoint for r in PLAN.values())
    finals = {run_id: r for run_id, r in PLAN.items() if r.checkpoint == top}
    seed = CFG.analysis.paper_seed
    shown = {run_id for run_id, r in finals.items() if r.rl.seed == seed} or set(finals)
    return pre | {f"{run_id}-rl-final" for run_id in shown}


def _glue_models():
    sel = OFFICIAL.glue_models
    if not (OFFICIAL.enabled and OFFICIAL.glue):
        return []
    if isinstance(sel, list):
        unknown = [m for m in sel if m not in MODELS]
        if unknown:
            raise WorkflowError(
                f"invalid config in {_source}: official.glue_models: unknown model id(s) "
                f"{unknown}; this plan's models: {', '.join(MODELS)}")
        return sorted(set(sel))
    return sorted({"table": _table_models, "full_set": lambda: FULL_SET_MODELS,
                   "all": lambda: MODELS}[sel]())


GLUE_MODELS = _glue_models()
READING_MODELS = (
    sorted(FULL_SET_MODELS if OFFICIAL.models == "full_set" else MODELS)
    if OFFICIAL.enabled and OFFICIAL.reading else []
)
# Models with a results/eval/<model>.official.parquet: GLUE, reading or both.
OFFICIAL_MODELS = sorted(set(GLUE_MODELS) | set(READING_MODELS))
AOA_RUNS = list(CFG.pretrain.runs) if OFFICIAL.enabled and OFFICIAL.aoa else []
_WHERE = ("path", "python", "data_path")
_GLUE = ("glue", "learning_rate", "batch_size", "big_batch_size", "epochs", "wsc_epochs", "seed",
         "sequence_length", "take_final", "finetune_path")


def official_section(*keys):
    """Only the fields a rule uses, so that e.g. turning AoA on does not rerun GLUE."""
    return json.dumps(OFFICIAL.model_dump(mode="json", include=set(_WHERE + keys)), sort_keys=True)


def official_dir(model_id, part):
    return f"{RESULTS}/official/{model_id}/{part}"


def all_official_outputs():
    out = []
    out += [f"{RESULTS}/eval/{m}.official.parquet" for m in OFFICIAL_MODELS]
    out += [f"{RESULTS}/eval/{r}-rl-aoa.official.parquet" for r in AOA_RL_RUNS]
    return out + [f"{RESULTS}/eval/{r}-aoa.official.parquet" for r in AOA_RUNS]


# The track's revisions the pretraining run has (config validation: all up to its last
# milestone); later ones are left to the pipeline, which skips them.
AOA_MILESTONES = [w for _, w in aoa_steps(OFFICIAL.aoa_track) if w in CFG.pretrain.milestones]


def aoa_checkpoints(wildcards):
    return [ckpt_dir(wildcards.pretrain_run, w) for w in AOA_MILESTONES]


def _aoa_rl_runs():
    """RL runs from the BabyLM table's checkpoint (the largest start), whose policy gets the
    pipeline's AoA score next to that checkpoint's: the policy takes the track's revision after
    the checkpoint, so only a track that goes past it has them (paper: non-strict-small)."""
    if not (OFFICIAL.enabled and OFFICIAL.aoa and PLAN):
        return {}
    top = max(r.checkpoint for r in PLAN.values())
    words = [w for _, w in aoa_steps(OFFICIAL.aoa_track)]
    if top not in words or top == words[-1]:
        return {}
    return {run_id: r for run_id, r in PLAN.items() if r.checkpoint == top}


AOA_RL_RUNS = _aoa_rl_runs()


def aoa_rl_checkpoints(run_id):
    r = AOA_RL_RUNS[run_id]
    return [(m, pre_model_id(r.pretrain_run, m), ckpt_dir(r.pretrain_run, m))
            for m in AOA_MILESTONES if m <= r.checkpoint]
