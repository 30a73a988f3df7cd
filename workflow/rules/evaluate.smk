# Evaluation of every model in MODELS (pretraining checkpoints, RL checkpoints, final policies):
# teacher-scored stories, and BabyLM zero-shot tasks (fast sets everywhere, full sets on the
# models of FULL_SET_MODELS). Every model is scored with the base config's prompts, sampling,
# teacher and reward, whatever its RL variant used, so that all scores are comparable.

EVAL_DATA = CFG.zero_shot.data_path or f"{RESULTS}/eval_data/demo"


def all_eval_outputs():
    return [f"{RESULTS}/story_eval/{m}.parquet" for m in MODELS] + [
        f"{RESULTS}/eval/{m}.parquet" for m in MODELS
    ]


def model_inputs(wildcards):
    return MODELS[wildcards.model_id].inputs


def words_arg(flag, words):
    return "" if words is None else f"{flag} {words}"


def model_args(wildcards):
    m = MODELS[wildcards.model_id]
    return " ".join(
        filter(None, [words_arg("--pretrain-words", m.pretrain_words), words_arg("--rl-words", m.rl_words)])
    )


rule demo_eval_data:
    output:
        directory(f"{RESULTS}/eval_data/demo"),
    conda:
        CPU_ENV
    log:
        log_path("demo_eval_data"),
    benchmark:
        bench_path("demo_eval_data")
    shell:
        "{STORYRL} demo-eval --out {output:q} > {log:q} 2>&1"


# One job per evaluation group (storyrl/evaluate/manifest.py): a pretraining run's milestones,
# or an RL run's checkpoints and final policy, scored in one process with one teacher, so the
# start-up (imports, the teacher's engine, on SLURM the queue) is paid once per group rather
# than once per model. Each model keeps its own output file(s), so asking for one
# (`snakemake results/story_eval/<model>.parquet`) runs its group's job: a job writes all of
# its group's files, and one of them missing or out of date reruns the whole group. A rule's
# outputs are a fixed list, so groups of the same shape (the same labels after
# `<group>-pre-` / `<group>-rl-`) share a rule: story_eval_pre / zero_shot_pre for the
# pretraining curves, story_eval_rl / zero_shot_rl for the RL runs (an RL variant whose budget
# or checkpoint_every gives other checkpoints adds story_eval_rl2, ...).


def _eval_shapes():
    """{(rule suffix, kind, labels): [group ids]}, kind 'pre' or 'rl'."""
    groups = {}
    for model_id, m in MODELS.items():
        groups.setdefault(("rl" if m.run_id else "pre", m.group), []).append(m.label)
    shapes = {}
    for (kind, group), labels in groups.items():
        shapes.setdefault((kind, tuple(labels)), []).append(group)
    out, seen = {}, {}
    # The most common shape of a kind gets the plain name, so the profile sizes it.
    for (kind, labels), members in sorted(shapes.items(), key=lambda kv: -len(kv[1])):
        seen[kind] = seen.get(kind, 0) + 1
        out[(f"{kind}{seen[kind] if seen[kind] > 1 else ''}", kind, labels)] = members
    return out


EVAL_SHAPES = _eval_shapes()


def group_models(kind, group):
    """The model ids of a group, in the order of MODELS."""
    return [mid for mid, m in MODELS.items() if m.group == group and bool(m.run_id) == (kind == "rl")]


def _group_inputs(kind):
    return lambda w: sorted({p for mid in group_models(kind, w.group) for p in MODELS[mid].inputs})


def _ids(model_id):
    m = MODELS[model_id]
    return {"model": m.path, "model_id": model_id, "pretrain_words": m.pretrain_words,
            "rl_words": m.rl_words}


def _story_list(kind):
    def models(w):
        return json.dumps([{**_ids(mid), "run_id": MODELS[mid].run_id,
                            "output": f"{RESULTS}/story_eval/{mid}.parquet"}
                           for mid in group_models(kind, w.group)], separators=(",", ":"))

    return models


def _zero_shot_list(kind):
    def models(w):
        return json.dumps([{**_ids(mid), "variants": ["fast", "full"] if mid in FULL_SET_MODELS else ["fast"],
                            "parquet": f"{RESULTS}/eval/{mid}.parquet",
                            "output_dir": f"{RESULTS}/eval/official/{mid}"}
                           for mid in group_models(kind, w.group)], separators=(",", ":"))

    return models


for (suffix, kind, labels), groups in EVAL_SHAPES.items():

    rule:
        name:
            f"story_eval_{suffix}"
        input:
            _group_inputs(kind),
        output:
            [f"{RESULTS}/story_eval/{{group}}-{kind}-{label}.parquet" for label in labels],
        wildcard_constraints:
            group=one_of(groups),
        params:
            models=_story_list(kind),
            section=section(CFG.story_eval),
            # Only what story evaluation reads of the rl section: a change to the rest (PPO
            # settings, budget) reruns the RL runs' evaluations through their checkpoints, but
            # not those of the pretraining checkpoints.
            rl=json.dumps(CFG.rl.model_dump(mode="json", include={"prompts", "sampling"}),
                          sort_keys=True, separators=(",", ":")),
            teacher=teacher_json(CFG.teacher.model_dump(mode="json")),
            reward=section(CFG.reward),
        resources:
            gpu=1,
        conda:
            GPU_ENV
        log:
            log_path(f"story_eval_{suffix}", "{group}"),
        benchmark:
            bench_path(f"story_eval_{suffix}", "{group}")
        shell:
            "{STORYRL} eval stories {GPU_CHECK} --models {params.models:q} --section {params.section:q}"
            " --rl {params.rl:q} --teacher {params.teacher:q} --reward {params.reward:q} > {log:q} 2>&1"

    rule:
        name:
            f"zero_shot_{suffix}"
        input:
            _group_inputs(kind),
            data=[] if CFG.zero_shot.data_path else EVAL_DATA,
        output:
            [f"{RESULTS}/eval/{{group}}-{kind}-{label}.parquet" for label in labels]
            + [directory(f"{RESULTS}/eval/official/{{group}}-{kind}-{label}") for label in labels],
        wildcard_constraints:
            group=one_of(groups),
        params:
            models=_zero_shot_list(kind),
            tasks=" ".join(CFG.zero_shot.tasks),
            fast_tasks=" ".join(["--fast-tasks", *CFG.zero_shot.fast_tasks]) if CFG.zero_shot.fast_tasks else "",
            data=EVAL_DATA,
            cfg=CFG.zero_shot,
        resources:
            gpu=1,
        conda:
            GPU_ENV
        log:
            log_path(f"zero_shot_{suffix}", "{group}"),
        benchmark:
            bench_path(f"zero_shot_{suffix}", "{group}")
        shell:
            "{STORYRL} eval zero-shot-suite {GPU_CHECK} --models {params.models:q} --data-path {params.data:q}"
            " --tasks {params.tasks} {params.fast_tasks} --batch-size {params.cfg.batch_size}"
            " --device {params.cfg.device} --dtype {params.cfg.dtype} > {log:q} 2>&1"
