# One rule for every pretraining run (config `pretrain.runs`), so a profile sizes it by the one
# name `pretrain`. The run's resume state lives in work/, which is not an output, so a job killed
# by a time limit resumes when rerun. A job given more than one GPU (resources gpu=N, e.g. from
# the profile's set-resources) runs data-parallel: torchrun starts one process per GPU.
from snakemake.logging import logger

from storyrl.plan.checks import unreachable_milestones

_errors, _warnings = unreachable_milestones(P)
for _w in _warnings:
    logger.warning(_w)
if _errors:
    raise WorkflowError("\n".join(_errors))


rule pretrain:
    input:
        unpack(lambda w: P.pretrain_inputs(w.run_id)),
    output:
        ckpts=[directory(P.ckpt_dir("{run_id}", w)) for w in CFG.pretrain.milestones],
        log=P.path("pretrain_log_path", "{run_id}"),
    wildcard_constraints:
        run_id=one_of(CFG.pretrain.runs),
    params:
        section=lambda w: args.section(CFG.pretrain_job(w.run_id)),
        work=P.path("pretrain_work_dir", "{run_id}"),
        ckpts=P.path("pretrain_dir", "{run_id}"),
        launch=lambda w, resources: args.pretrain_launcher(resources),
        gpu_check=gpu_check,
    resources:
        gpu=1,
    conda:
        GPU_ENV
    log:
        P.log("pretrain", "{run_id}"),
    benchmark:
        P.bench("pretrain", "{run_id}")
    # Everything the job says goes to its log; its progress lines also go to fd 3, opened on
    # snakemake's own stderr (`3>&2` before the redirections): the console shows the long jobs
    # moving (a line a minute, tracking.progress_every_s), the log keeps the detail.
    shell:
        "{params.launch} -m storyrl.cli pretrain {params.gpu_check} --section {params.section:q}"
        " --tokens {input.tokens:q} --tokens-meta {input.meta:q} --tokenizer {input.tokenizer:q}"
        " --work-dir {params.work:q} --checkpoint-dir {params.ckpts:q} --log-parquet {output.log:q}"
        " --progress-fd 3 3>&2 > {log:q} 2>&1"
