# The official BabyLM pipeline's GLUE fine-tuning, reading and AoA parts, run from the checkout
# that `official.path` names (storyrl/evaluate/official.py); nothing here when it is unset.
# Its outputs stay in its own layout under results/official/ and are parsed into
# results/eval/<model_id>.official.parquet (eval_scores, like the zero-shot files), which the
# BabyLM table reads next to the zero-shot scores.
include: "plan/official.smk"


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
        "python -m storyrl.cli eval official glue --section {params.section:q} --model {params.model:q}"
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
        "python -m storyrl.cli eval official reading --section {params.section:q} --model {params.model:q}"
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
        "python -m storyrl.cli eval official collect --section {params.section:q} --model {params.model:q}"
        " --model-id {wildcards.model_id} {params.words} {params.glue} {params.reading}"
        " --parquet {output:q} > {log:q} 2>&1"


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
        "python -m storyrl.cli eval official aoa --section {params.section:q} --run-id {wildcards.pretrain_run}"
        " {params.checkpoints} --output-dir {output.official:q} --parquet {output.parquet:q} > {log:q} 2>&1"


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
        "python -m storyrl.cli eval official aoa --section {params.section:q} --run-id {wildcards.run_id}-rl"
        " {params.checkpoints} {params.policy} --output-dir {output.official:q}"
        " --parquet {output.parquet:q} > {log:q} 2>&1"
