# BabyLM 2025 leaderboard submissions (storyrl/evaluate/submission.py): for a final model, its
# full zero-shot, GLUE, reading and AoA outputs and the fast evaluations of the track's chck_<N>M
# checkpoints up to it, collated as the official collate_preds.py --fast does, into
# results/submission/<model_id>.json. Final models: the full-set models whose checkpoints the
# track names (900M-pre and the policies from it in the paper; the policy fills the next
# revision, chck_1000M, as for its AoA score). Part of `all` only when this config makes every
# piece (official.path set, all seven GLUE tasks on the model (official.glue_models), reading
# and AoA on); asking for one that it
# cannot make stops the planning with what is lacking.


rule official_reading_fast:
    input:
        lambda w: P.models[w.model_id].inputs,
    output:
        directory(P.path("official_dir", "{model_id}", "reading_fast")),
    wildcard_constraints:
        model_id=one_of(P.fast_reading_models),
    params:
        model=lambda w: P.models[w.model_id].path,
        section=args.official_section(P, "reading"),
    resources:
        gpu=1,
    conda:
        CPU_ENV
    log:
        P.log("official_reading_fast", "{model_id}"),
    benchmark:
        P.bench("official_reading_fast", "{model_id}")
    shell:
        "python -m storyrl.cli eval official reading --variant fast --section {params.section:q}"
        " --model {params.model:q} --output-dir {output:q} > {log:q} 2>&1"


rule submission:
    input:
        unpack(lambda w: targets.submission_inputs(P, w.model_id)),
    output:
        P.path("submission_path", "{model_id}"),
    wildcard_constraints:
        model_id=one_of(P.submissions),
    params:
        args=lambda w: args.submission_args(P, w.model_id),
    conda:
        CPU_ENV
    log:
        P.log("submission", "{model_id}"),
    benchmark:
        P.bench("submission", "{model_id}")
    shell:
        "python -m storyrl.cli submission {params.args} --output {output:q} > {log:q} 2>&1"
