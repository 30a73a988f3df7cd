# The official BabyLM pipeline's GLUE fine-tuning, reading and AoA parts, run from the checkout
# that `official.path` names (storyrl/evaluate/official.py); nothing here when it is unset.
# Its outputs stay in its own layout under results/official/ and are parsed into
# results/eval/<model_id>.official.parquet (eval_scores, like the zero-shot files), which the
# BabyLM table reads next to the zero-shot scores.


rule official_glue:
    input:
        lambda w: P.models[w.model_id].inputs,
    output:
        directory(P.path("official_dir", "{model_id}", "glue/{task}")),
    wildcard_constraints:
        model_id=one_of(P.official.glue_models),
        task=one_of(CFG.official.glue),
    params:
        model=lambda w: P.models[w.model_id].path,
        section=args.official_section(P, *args.OFFICIAL_GLUE),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        P.log("official_glue", "{model_id}", "{task}"),
    benchmark:
        P.bench("official_glue", "{model_id}", "{task}")
    shell:
        "python -m storyrl.cli eval official glue --section {params.section:q} --model {params.model:q}"
        " --task {wildcards.task} --output-dir {output:q} > {log:q} 2>&1"


rule official_reading:
    input:
        lambda w: P.models[w.model_id].inputs,
    output:
        directory(P.path("official_dir", "{model_id}", "reading")),
    wildcard_constraints:
        model_id=one_of(P.official.reading_models),
    params:
        model=lambda w: P.models[w.model_id].path,
        section=args.official_section(P, "reading"),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        P.log("official_reading", "{model_id}"),
    benchmark:
        P.bench("official_reading", "{model_id}")
    shell:
        "python -m storyrl.cli eval official reading --section {params.section:q} --model {params.model:q}"
        " --output-dir {output:q} > {log:q} 2>&1"


rule official_collect:
    input:
        lambda w: P.models[w.model_id].inputs,
        glue=lambda w: [P.path("official_dir", w.model_id, f"glue/{t}") for t in CFG.official.glue]
        if w.model_id in P.official.glue_models else [],
        reading=lambda w: P.path("official_dir", w.model_id, "reading")
        if w.model_id in P.official.reading_models else [],
    output:
        P.path("official_eval_path", "{model_id}"),
    wildcard_constraints:
        model_id=one_of(P.official.models),
    params:
        model=lambda w: P.models[w.model_id].path,
        section=args.official_section(P, "glue", "reading"),
        words=lambda w: args.model_args(P, w.model_id),
        glue=lambda w: f"--glue-dir {P.path('official_dir', w.model_id, 'glue')}"
        if w.model_id in P.official.glue_models else "",
        reading=lambda w, input: f"--reading-dir {input.reading}"
        if w.model_id in P.official.reading_models else "",
    conda:
        CPU_ENV
    log:
        P.log("official_collect", "{model_id}"),
    benchmark:
        P.bench("official_collect", "{model_id}")
    shell:
        "python -m storyrl.cli eval official collect --section {params.section:q} --model {params.model:q}"
        " --model-id {wildcards.model_id} {params.words} {params.glue} {params.reading}"
        " --parquet {output:q} > {log:q} 2>&1"


rule official_aoa:
    input:
        lambda w: [c for _, _, c in P.aoa_checkpoints(w.pretrain_run)],
    output:
        parquet=P.path("official_eval_path", "{pretrain_run}-aoa"),
        official=directory(P.path("official_dir", "{pretrain_run}-aoa")),
    wildcard_constraints:
        pretrain_run=one_of(P.official.aoa_runs),
    params:
        section=args.official_section(P, "aoa", "aoa_track", "aoa_min_context"),
        checkpoints=lambda w: args.aoa_checkpoint_args(P.aoa_checkpoints(w.pretrain_run)),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        P.log("official_aoa", "{pretrain_run}"),
    benchmark:
        P.bench("official_aoa", "{pretrain_run}")
    shell:
        "python -m storyrl.cli eval official aoa --section {params.section:q} --run-id {wildcards.pretrain_run}"
        " {params.checkpoints} --output-dir {output.official:q} --parquet {output.parquet:q} > {log:q} 2>&1"


rule official_aoa_rl:
    input:
        lambda w: [c for _, _, c in P.aoa_rl_checkpoints(w.run_id)],
        lambda w: P.models[f"{w.run_id}-rl-final"].inputs,
    output:
        parquet=P.path("official_eval_path", "{run_id}-rl-aoa"),
        official=directory(P.path("official_dir", "{run_id}-rl-aoa")),
    wildcard_constraints:
        run_id=one_of(P.official.aoa_rl_runs),
    params:
        section=args.official_section(P, "aoa", "aoa_track", "aoa_min_context"),
        checkpoints=lambda w: args.aoa_checkpoint_args(P.aoa_rl_checkpoints(w.run_id)),
        policy=lambda w: f"--policy {w.run_id}-rl-final {P.models[f'{w.run_id}-rl-final'].path}",
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        P.log("official_aoa_rl", "{run_id}"),
    benchmark:
        P.bench("official_aoa_rl", "{run_id}")
    shell:
        "python -m storyrl.cli eval official aoa --section {params.section:q} --run-id {wildcards.run_id}-rl"
        " {params.checkpoints} {params.policy} --output-dir {output.official:q}"
        " --parquet {output.parquet:q} > {log:q} 2>&1"
