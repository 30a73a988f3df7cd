# RL runs of the run table (config `rl_runs`): one job per run, from a pretraining checkpoint.
# The run's resume state lives in its folder (state/, parts/), which is not an output, so a job
# killed at its time limit continues from its last step when it runs again. A job rerun because
# its settings changed finds a state of other settings there: `--on-change move` moves that run
# into <run>/stale-<time>/ and starts afresh (storyrl.training.run_config), instead of resuming it.
# With rl_sharing.runs_per_gpu > 1 the runs go in packs instead: one job per pack (rule
# rl_pack_<n>, storyrl.rl.pack) trains its runs side by side on one GPU with one teacher server.
# Every run keeps its folder, outputs and log, so the rules that read them do not change.


rule rl:
    input:
        unpack(lambda w: P.rl_inputs(w.run_id)),
    output:
        summary=P.path("summary_path", "{run_id}"),
        steps=P.path("steps_path", "{run_id}"),
        rollouts=P.path("rollouts_path", "{run_id}"),
        final=directory(P.path("rl_checkpoint_dir", "{run_id}", None)),
    wildcard_constraints:
        run_id=one_of(set(P.rl_runs) - P.packed),
    params:
        section=lambda w: args.rl_params(P, w.run_id)["section"],
        teacher=lambda w: args.rl_params(P, w.run_id)["teacher"],
        reward=lambda w: args.rl_params(P, w.run_id)["reward"],
        words=lambda w: P.rl_runs[w.run_id].checkpoint,
        out=lambda w: P.rl_dir(w.run_id),
        cache=lambda w: P.path("teacher_cache_path", w.run_id),
        gpu_check=gpu_check,
    # RL runs are the long jobs: start them before the evaluations that could wait.
    priority: 10
    resources:
        gpu=1,
    conda:
        GPU_ENV
    log:
        P.log("rl", "{run_id}"),
    benchmark:
        P.bench("rl", "{run_id}")
    # Progress lines also on snakemake's console through fd 3, as in rule pretrain.
    shell:
        "python -m storyrl.cli rl train {params.gpu_check} --section {params.section:q} --teacher {params.teacher:q}"
        " --reward {params.reward:q} --teacher-cache {params.cache:q} --checkpoint {input.checkpoint:q}"
        " --output {params.out:q} --run-id {wildcards.run_id} --pretrain-words {params.words}"
        " --on-change move"
        " --corpus-stats {input.corpus_stats:q} --progress-fd 3 3>&2 > {log:q} 2>&1"


for _n, _ids in enumerate(P.packs, 1):

    rule:
        name:
            f"rl_pack_{_n}"
        input:
            P.pack_inputs(_ids),
        output:
            [P.path(f, run_id) for run_id in _ids for f in ("summary_path", "steps_path", "rollouts_path")],
            [directory(P.path("rl_checkpoint_dir", run_id, None)) for run_id in _ids],
        params:
            # Functions: a string param would be read as a pattern (its braces as wildcards).
            sharing=lambda w: args.section(CFG.rl_sharing),
            # Pre-quoted: one --run JSON per run; a change to any run's settings reruns the pack.
            runs=lambda w, ids=_ids: args.pack_runs(P, ids),
            gpu_check=gpu_check,
        priority: 10
        resources:
            gpu=1,
        conda:
            GPU_ENV
        log:
            P.log("rl_pack", str(_n)),
            P.log("rl_pack", f"{_n}.server"),
            [P.log("rl", run_id) for run_id in _ids],
        benchmark:
            P.bench("rl_pack", str(_n))
        shell:
            "python -m storyrl.cli rl pack {params.gpu_check} --sharing {params.sharing:q} --server-log {log[1]:q}"
            " {params.runs} --progress-fd 3 3>&2 > {log[0]:q} 2>&1"

    # A pack is placed like one RL job: one GPU, and the threads, runtime and memory that the
    # profile gives the `rl` rule (profiles/slurm: set-threads and set-resources of `rl`).
    getattr(rules, f"rl_pack_{_n}").rule.resources.update(rules.rl.rule.resources)
