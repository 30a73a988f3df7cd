# One rule for every pretraining run (config `pretrain.runs`), so a profile sizes it by the one
# name `pretrain`. The run's resume state lives in work/, which is not an output, so a job killed
# by a time limit resumes when rerun. A job given more than one GPU (resources gpu=N, e.g. from
# the profile's set-resources) runs data-parallel: torchrun starts one process per GPU.


def check_reachable_milestones():
    """Where a corpus is already tokenized (a rerun), find at planning time what the pretraining
    job would stop with at its start, after Snakemake has removed every published checkpoint
    of the run. An error when the stream was made with the current corpus and tokenizer
    sections (tokens.json's `made_with`), so it will not be rebuilt; a warning otherwise: a
    changed section reruns the tokens rule, and the new stream may reach the milestone."""
    from snakemake.logging import logger

    from storyrl.config import ConfigError
    from storyrl.pretrain_plan import plan_from_meta, stream_is_current

    errors = []
    for run_id, run in CFG.pretrain.runs.items():
        meta = f"{corpus_dir(run.corpus)}/tokens.json"
        if os.path.exists(meta):
            try:
                plan_from_meta(meta, CFG.models[run.model].n_positions, CFG.pretrain.training,
                               CFG.pretrain.milestones)
            except (ConfigError, KeyError, ValueError) as err:
                if stream_is_current(meta, CFG.corpora[run.corpus], CFG.tokenizer):
                    errors.append(f"pretraining run {run_id} with the token stream of {meta}: "
                                  f"{err}")
                else:
                    logger.warning(f"WARNING: pretraining run {run_id} with the token stream of "
                                   f"{meta}: {err}. Its job will stop at start unless the corpus "
                                   "changes.")
    if errors:
        raise WorkflowError("\n".join(errors))


check_reachable_milestones()


def all_pretrain_outputs():
    return [ckpt_dir(run_id, w) for run_id in CFG.pretrain.runs for w in CFG.pretrain.milestones]


def pretrain_input(wildcards):
    corpus = corpus_dir(CFG.pretrain.runs[wildcards.run_id].corpus)
    return {"tokens": f"{corpus}/tokens.bin", "meta": f"{corpus}/tokens.json",
            "tokenizer": f"{corpus}/tokenizer"}


def pretrain_launcher(wildcards, resources):
    """python for one GPU (or the CPU), torchrun with one process per GPU for more (one node)."""
    gpus = int(getattr(resources, "gpu", 0) or 0)
    if gpus <= 1:
        return "python"
    return f"python -m torch.distributed.run --standalone --nproc_per_node {gpus}"


rule pretrain:
    input:
        unpack(pretrain_input),
    output:
        ckpts=[directory(ckpt_dir("{run_id}", w)) for w in CFG.pretrain.milestones],
        log=f"{RESULTS}/pretrain/{{run_id}}/log.parquet",
    wildcard_constraints:
        run_id=one_of(CFG.pretrain.runs),
    params:
        section=lambda w: section(CFG.pretrain_job(w.run_id)),
        work=f"{RESULTS}/pretrain/{{run_id}}/work",
        ckpts=f"{RESULTS}/pretrain/{{run_id}}",
        launch=pretrain_launcher,
    resources:
        gpu=1,
    conda:
        GPU_ENV
    log:
        log_path("pretrain", "{run_id}"),
    benchmark:
        bench_path("pretrain", "{run_id}")
    # Everything the job says goes to its log; its progress lines also go to fd 3, opened on
    # snakemake's own stderr (`3>&2` before the redirections): the console shows the long jobs
    # moving (a line a minute, tracking.progress_every_s), the log keeps the detail.
    shell:
        "{params.launch} -m storyrl.cli pretrain {GPU_CHECK} --section {params.section:q}"
        " --tokens {input.tokens:q} --tokens-meta {input.meta:q} --tokenizer {input.tokenizer:q}"
        " --work-dir {params.work:q} --checkpoint-dir {params.ckpts:q} --log-parquet {output.log:q}"
        " --progress-fd 3 3>&2 > {log:q} 2>&1"
