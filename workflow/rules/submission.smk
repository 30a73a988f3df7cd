# BabyLM 2025 leaderboard submissions (storyrl/evaluate/submission.py): for a final model, its
# full zero-shot, GLUE, reading and AoA outputs and the fast evaluations of the track's chck_<N>M
# checkpoints up to it, collated as the official collate_preds.py --fast does, into
# results/submission/<model_id>.json. Final models: the full-set models whose checkpoints the
# track names (900M-pre and the policies from it in the paper; the policy fills the next
# revision, chck_1000M, as for its AoA score). Part of `all` only when this config makes every
# piece (official.path set, all seven GLUE tasks on the model (official.glue_models), reading
# and AoA on); asking for one that it
# cannot make stops the planning with what is lacking.
include: "plan/submission.smk"


rule official_reading_fast:
    input:
        model_inputs,
    output:
        directory(official_dir("{model_id}", "reading_fast")),
    wildcard_constraints:
        model_id=one_of(FAST_READING_MODELS),
    params:
        model=lambda w: MODELS[w.model_id].path,
        section=official_section("reading"),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        log_path("official_reading_fast", "{model_id}"),
    benchmark:
        bench_path("official_reading_fast", "{model_id}")
    shell:
        "python -m storyrl.cli eval official reading --variant fast --section {params.section:q}"
        " --model {params.model:q} --output-dir {output:q} > {log:q} 2>&1"


rule submission:
    input:
        unpack(submission_inputs),
    output:
        f"{RESULTS}/submission/{{model_id}}.json",
    wildcard_constraints:
        model_id=one_of(SUBMISSIONS),
    params:
        args=submission_args,
    conda:
        CPU_ENV
    log:
        log_path("submission", "{model_id}"),
    benchmark:
        bench_path("submission", "{model_id}")
    shell:
        "python -m storyrl.cli submission {params.args} --output {output:q} > {log:q} 2>&1"
