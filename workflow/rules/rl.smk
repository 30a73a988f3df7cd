# RL runs of the run table (config `rl_runs`): one job per run, from a pretraining checkpoint.
# The run's resume state lives in its folder (state/, parts/), which is not an output, so a job
# killed at its time limit continues from its last step when it runs again.


def all_rl_outputs():
    return [f"{rl_dir(run_id)}/summary.json" for run_id in PLAN]


def rl_input(wildcards):
    run = PLAN[wildcards.run_id]
    corpus = CFG.pretrain.runs[run.pretrain_run].corpus
    return {
        "checkpoint": ckpt_dir(run.pretrain_run, run.checkpoint),
        "corpus_stats": f"{corpus_dir(corpus)}/stats.json",
    }


rule rl:
    input:
        unpack(rl_input),
    output:
        summary=f"{RESULTS}/rl/{{run_id}}/summary.json",
        steps=f"{RESULTS}/rl/{{run_id}}/steps.parquet",
        rollouts=f"{RESULTS}/rl/{{run_id}}/rollouts.parquet",
        final=directory(f"{RESULTS}/rl/{{run_id}}/final"),
    wildcard_constraints:
        run_id=one_of(PLAN),
    params:
        section=lambda w: section(PLAN[w.run_id].rl),
        teacher=lambda w: teacher_json(PLAN[w.run_id].teacher),
        reward=lambda w: json.dumps(PLAN[w.run_id].reward, sort_keys=True),
        words=lambda w: PLAN[w.run_id].checkpoint,
        out=lambda w: rl_dir(w.run_id),
        # The run's own cache (no SQLite file is shared between jobs): a resumed run redraws
        # the stories of its unfinished step and finds their replies here.
        cache=lambda w: f"{rl_dir(w.run_id)}/teacher_cache.sqlite",
    # RL runs are the long jobs: start them before the evaluations that could wait.
    priority: 10
    resources:
        gpu=1,
    conda:
        GPU_ENV
    log:
        log_path("rl", "{run_id}"),
    benchmark:
        bench_path("rl", "{run_id}")
    shell:
        "{STORYRL} rl train {GPU_CHECK} --section {params.section:q} --teacher {params.teacher:q}"
        " --reward {params.reward:q} --teacher-cache {params.cache:q} --checkpoint {input.checkpoint:q}"
        " --output {params.out:q} --run-id {wildcards.run_id} --pretrain-words {params.words}"
        " --corpus-stats {input.corpus_stats:q} > {log:q} 2>&1"
