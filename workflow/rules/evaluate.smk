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


rule story_eval:
    input:
        model_inputs,
    output:
        f"{RESULTS}/story_eval/{{model_id}}.parquet",
    wildcard_constraints:
        model_id=one_of(MODELS),
    params:
        model=lambda w: MODELS[w.model_id].path,
        words=model_args,
        run_id=lambda w: MODELS[w.model_id].run_id or "''",
        section=section(CFG.story_eval),
        rl=section(CFG.rl),
        teacher=teacher_json(CFG.teacher.model_dump(mode="json")),
        reward=section(CFG.reward),
    resources:
        gpu=1,
    conda:
        GPU_ENV
    log:
        log_path("story_eval", "{model_id}"),
    benchmark:
        bench_path("story_eval", "{model_id}")
    shell:
        "{STORYRL} eval stories {GPU_CHECK} --model {params.model:q} --output {output:q} --section {params.section:q}"
        " --rl {params.rl:q} --teacher {params.teacher:q} --reward {params.reward:q}"
        " --model-id {wildcards.model_id} {params.words}"
        " --run-id {params.run_id} > {log:q} 2>&1"


rule zero_shot:
    input:
        model_inputs,
        data=[] if CFG.zero_shot.data_path else EVAL_DATA,
    output:
        parquet=f"{RESULTS}/eval/{{model_id}}.parquet",
        official=directory(f"{RESULTS}/eval/official/{{model_id}}"),
    wildcard_constraints:
        model_id=one_of(MODELS),
    params:
        model=lambda w: MODELS[w.model_id].path,
        words=model_args,
        variants=lambda w: "fast full" if w.model_id in FULL_SET_MODELS else "fast",
        tasks=" ".join(CFG.zero_shot.tasks),
        data=EVAL_DATA,
        cfg=CFG.zero_shot,
    resources:
        gpu=1,
    conda:
        GPU_ENV
    log:
        log_path("zero_shot", "{model_id}"),
    benchmark:
        bench_path("zero_shot", "{model_id}")
    shell:
        "{STORYRL} eval zero-shot-suite {GPU_CHECK} --model {params.model:q} --data-path {params.data:q}"
        " --variant {params.variants} --tasks {params.tasks} --batch-size {params.cfg.batch_size}"
        " --device {params.cfg.device} --dtype {params.cfg.dtype} --model-id {wildcards.model_id}"
        " {params.words} --parquet {output.parquet:q} --output-dir {output.official:q} > {log:q} 2>&1"
