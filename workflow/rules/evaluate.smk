# Evaluation of every model of the plan (storyrl.plan.models: pretraining checkpoints, RL checkpoints, final policies):
# teacher-scored stories, and BabyLM zero-shot tasks (fast sets everywhere, full sets on the
# plan's full-set models). Every model is scored with the base config's prompts, sampling,
# teacher and reward, whatever its RL variant used, so that all scores are comparable.


rule demo_eval_data:
    output:
        directory(P.path("demo_eval_dir")),
    conda:
        CPU_ENV
    log:
        P.log("demo_eval_data"),
    benchmark:
        P.bench("demo_eval_data")
    shell:
        "python -m storyrl.cli demo-eval --out {output:q} > {log:q} 2>&1"


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
for (suffix, kind, labels), groups in P.eval_shapes.items():

    rule:
        name:
            f"story_eval_{suffix}"
        input:
            lambda w, kind=kind: P.group_inputs(kind, w.group),
        output:
            [P.path("story_eval_path", f"{{group}}-{kind}-{label}") for label in labels],
        wildcard_constraints:
            group=one_of(groups),
        params:
            models=lambda w, kind=kind: args.story_list(P, kind, w.group),
            section=args.section(CFG.story_eval),
            # Only what story evaluation reads of the rl section: a change to the rest (PPO
            # settings, budget) reruns the RL runs' evaluations through their checkpoints, but
            # not those of the pretraining checkpoints.
            rl=args.story_eval_rl(P),
            teacher=lambda w: args.teacher_json(P, CFG.teacher.model_dump(mode="json")),  # a function: "${...}" is no wildcard
            reward=args.section(CFG.reward),
            gpu_check=gpu_check,
        resources:
            gpu=1,
        conda:
            GPU_ENV
        log:
            P.log(f"story_eval_{suffix}", "{group}"),
        benchmark:
            P.bench(f"story_eval_{suffix}", "{group}")
        shell:
            "python -m storyrl.cli eval stories {params.gpu_check} --models {params.models:q} --section {params.section:q}"
            " --rl {params.rl:q} --teacher {params.teacher:q} --reward {params.reward:q} > {log:q} 2>&1"

    rule:
        name:
            f"zero_shot_{suffix}"
        input:
            lambda w, kind=kind: P.group_inputs(kind, w.group),
            data=[] if CFG.zero_shot.data_path else P.eval_data,
        output:
            [P.path("eval_path", f"{{group}}-{kind}-{label}") for label in labels]
            + [directory(P.path("zero_shot_dir", f"{{group}}-{kind}-{label}")) for label in labels],
        wildcard_constraints:
            group=one_of(groups),
        params:
            models=lambda w, kind=kind: args.zero_shot_list(P, kind, w.group),
            tasks=" ".join(CFG.zero_shot.tasks),
            fast_tasks=" ".join(["--fast-tasks", *CFG.zero_shot.fast_tasks]) if CFG.zero_shot.fast_tasks else "",
            # A function only for snakemake's lint, which reads a string param that prefixes an
            # input as a path prefix hard-coded: this is the data folder itself (an input only
            # when the demo sets are built here), and its path stays a param, so that a new
            # zero_shot.data_path reruns the evaluations.
            data=lambda w: P.eval_data,
            cfg=CFG.zero_shot,
            gpu_check=gpu_check,
        resources:
            gpu=1,
        conda:
            GPU_ENV
        log:
            P.log(f"zero_shot_{suffix}", "{group}"),
        benchmark:
            P.bench(f"zero_shot_{suffix}", "{group}")
        shell:
            "python -m storyrl.cli eval zero-shot-suite {params.gpu_check} --models {params.models:q} --data-path {params.data:q}"
            " --tasks {params.tasks} {params.fast_tasks} --batch-size {params.cfg.batch_size}"
            " --device {params.cfg.device} --dtype {params.cfg.dtype} > {log:q} 2>&1"
