# Judge agreement (config `agreement`): each further teacher re-scores the same seeded sample of
# every RL run's stories (storyrl.teacher.agreement), one job per teacher so its model loads once. A
# teacher that loads weights here (vllm, hf) runs as `teacher_agreement_gpu` on a GPU node; the
# others (heuristic, openai: a server elsewhere) as `teacher_agreement`.
include: "plan/agreement.smk"


rule teacher_agreement:
    input:
        [f"{rl_dir(r)}/rollouts.parquet" for r in PLAN],
    output:
        [str(layout.agreement_path(RESULTS, "{teacher}", r)) for r in PLAN],
    wildcard_constraints:
        teacher=one_of(set(AGREEMENT) - AGREEMENT_GPU),
    params:
        teacher=lambda w: agreement_params(w)["teacher"],
        sample=lambda w: agreement_params(w)["sample"],
        gpu_check="",
    conda:
        CPU_ENV
    log:
        log_path("agreement", "{teacher}"),
    benchmark:
        bench_path("agreement", "{teacher}")
    shell:
        "python -m storyrl.cli teacher agree {params.gpu_check} --name {wildcards.teacher}"
        " --teacher {params.teacher:q} --sample {params.sample:q} --rollouts {input:q}"
        " --output {output:q} > {log:q} 2>&1"


# A teacher that loads its weights here is a GPU job, placed like the story evaluations.
use rule teacher_agreement as teacher_agreement_gpu with:
    wildcard_constraints:
        teacher=one_of(AGREEMENT_GPU),
    params:
        teacher=lambda w: agreement_params(w)["teacher"],
        sample=lambda w: agreement_params(w)["sample"],
        gpu_check=gpu_check,
    resources:
        gpu=1,
    conda:
        GPU_ENV
