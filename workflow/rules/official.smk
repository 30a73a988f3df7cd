# The official BabyLM pipeline's GLUE fine-tuning, reading and AoA parts, run from the checkout
# that `official.path` names (storyrl/evaluate/official.py); nothing here when it is unset.
# Its outputs stay in its own layout under results/official/ and are parsed into
# results/eval/<model_id>.official.parquet (eval_scores, like the zero-shot files), which the
# BabyLM table reads next to the zero-shot scores.
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


rule official_glue:
    input:
        model_inputs,
    output:
        directory(official_dir("{model_id}", "glue/{task}")),
    wildcard_constraints:
        model_id=one_of(GLUE_MODELS),
        task=one_of(OFFICIAL.glue),
    params:
        model=lambda w: MODELS[w.model_id].path,
        section=official_section(*_GLUE),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        log_path("official_glue", "{model_id}", "{task}"),
    benchmark:
        bench_path("official_glue", "{model_id}", "{task}")
    shell:
        "{STORYRL} eval official glue --section {params.section:q} --model {params.model:q}"
        " --task {wildcards.task} --output-dir {output:q} > {log:q} 2>&1"


rule official_reading:
    input:
        model_inputs,
    output:
        directory(official_dir("{model_id}", "reading")),
    wildcard_constraints:
        model_id=one_of(READING_MODELS),
    params:
        model=lambda w: MODELS[w.model_id].path,
        section=official_section("reading"),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        log_path("official_reading", "{model_id}"),
    benchmark:
        bench_path("official_reading", "{model_id}")
    shell:
        "{STORYRL} eval official reading --section {params.section:q} --model {params.model:q}"
        " --output-dir {output:q} > {log:q} 2>&1"


rule official_collect:
    input:
        model_inputs,
        glue=lambda w: [official_dir(w.model_id, f"glue/{t}") for t in OFFICIAL.glue]
        if w.model_id in GLUE_MODELS else [],
        reading=lambda w: official_dir(w.model_id, "reading") if w.model_id in READING_MODELS else [],
    output:
        f"{RESULTS}/eval/{{model_id}}.official.parquet",
    wildcard_constraints:
        model_id=one_of(OFFICIAL_MODELS),
    params:
        model=lambda w: MODELS[w.model_id].path,
        section=official_section("glue", "reading"),
        words=model_args,
        glue=lambda w: f"--glue-dir {official_dir(w.model_id, 'glue')}" if w.model_id in GLUE_MODELS else "",
        reading=lambda w, input: f"--reading-dir {input.reading}" if w.model_id in READING_MODELS else "",
    conda:
        CPU_ENV
    log:
        log_path("official_collect", "{model_id}"),
    benchmark:
        bench_path("official_collect", "{model_id}")
    shell:
        "{STORYRL} eval official collect --section {params.section:q} --model {params.model:q}"
        " --model-id {wildcards.model_id} {params.words} {params.glue} {params.reading}"
        " --parquet {output:q} > {log:q} 2>&1"


# The track's revisions the pretraining run has (config validation: all up to its last
# milestone); later ones are left to the pipeline, which skips them.
AOA_MILESTONES = [w for _, w in aoa_steps(OFFICIAL.aoa_track) if w in CFG.pretrain.milestones]


def aoa_checkpoints(wildcards):
    return [ckpt_dir(wildcards.pretrain_run, w) for w in AOA_MILESTONES]


rule official_aoa:
    input:
        aoa_checkpoints,
    output:
        parquet=f"{RESULTS}/eval/{{pretrain_run}}-aoa.official.parquet",
        official=directory(f"{RESULTS}/official/{{pretrain_run}}-aoa"),
    wildcard_constraints:
        pretrain_run=one_of(AOA_RUNS),
    params:
        section=official_section("aoa", "aoa_track", "aoa_min_context"),
        checkpoints=lambda w: " ".join(
            f"--checkpoint {m} {pre_model_id(w.pretrain_run, m)} {ckpt_dir(w.pretrain_run, m)}"
            for m in AOA_MILESTONES
        ),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        log_path("official_aoa", "{pretrain_run}"),
    benchmark:
        bench_path("official_aoa", "{pretrain_run}")
    shell:
        "{STORYRL} eval official aoa --section {params.section:q} --run-id {wildcards.pretrain_run}"
        " {params.checkpoints} --output-dir {output.official:q} --parquet {output.parquet:q} > {log:q} 2>&1"


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


rule official_aoa_rl:
    input:
        lambda w: [c for _, _, c in aoa_rl_checkpoints(w.run_id)],
        lambda w: MODELS[f"{w.run_id}-rl-final"].inputs,
    output:
        parquet=f"{RESULTS}/eval/{{run_id}}-rl-aoa.official.parquet",
        official=directory(f"{RESULTS}/official/{{run_id}}-rl-aoa"),
    wildcard_constraints:
        run_id=one_of(AOA_RL_RUNS),
    params:
        section=official_section("aoa", "aoa_track", "aoa_min_context"),
        checkpoints=lambda w: " ".join(
            f"--checkpoint {m} {mid} {path}" for m, mid, path in aoa_rl_checkpoints(w.run_id)
        ),
        policy=lambda w: f"--policy {w.run_id}-rl-final {MODELS[f'{w.run_id}-rl-final'].path}",
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        log_path("official_aoa_rl", "{run_id}"),
    benchmark:
        bench_path("official_aoa_rl", "{run_id}")
    shell:
        "{STORYRL} eval official aoa --section {params.section:q} --run-id {wildcards.run_id}-rl"
        " {params.checkpoints} {params.policy} --output-dir {output.official:q}"
        " --parquet {output.parquet:q} > {log:q} 2>&1"
