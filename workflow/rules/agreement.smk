# Judge agreement (config `agreement`): each further teacher re-scores the same seeded sample of
# every RL run's stories (storyrl.stories.teacher.agreement), one job per teacher so its model loads once. A
# teacher that loads weights here (vllm, hf) runs as `teacher_agreement_gpu` on a GPU node; the
# others (heuristic, openai: a server elsewhere) as `teacher_agreement`.


rule teacher_agreement:
    input:
        [P.path("rollouts_path", r) for r in P.rl_runs],
    output:
        [P.path("agreement_path", "{teacher}", r) for r in P.rl_runs],
    wildcard_constraints:
        teacher=one_of(set(P.agreement) - P.agreement_gpu),
    params:
        teacher=lambda w: args.agreement_params(P, w.teacher)["teacher"],
        sample=lambda w: args.agreement_params(P, w.teacher)["sample"],
        gpu_check="",
    conda:
        CPU_ENV
    log:
        P.log("agreement", "{teacher}"),
    benchmark:
        P.bench("agreement", "{teacher}")
    shell:
        "python -m storyrl.cli teacher agree {params.gpu_check} --name {wildcards.teacher}"
        " --teacher {params.teacher:q} --sample {params.sample:q} --rollouts {input:q}"
        " --output {output:q} > {log:q} 2>&1"


# A teacher that loads its weights here is a GPU job, placed like the story evaluations.
use rule teacher_agreement as teacher_agreement_gpu with:
    wildcard_constraints:
        teacher=one_of(P.agreement_gpu),
    params:
        teacher=lambda w: args.agreement_params(P, w.teacher)["teacher"],
        sample=lambda w: args.agreement_params(P, w.teacher)["sample"],
        gpu_check=gpu_check,
    resources:
        gpu=1,
    conda:
        GPU_ENV
