# One rule per pretraining run (runs differ in their milestone outputs). The run's resume state
# lives in work/, which is not an output, so a job killed by a time limit resumes when rerun.


def all_pretrain_outputs():
    return [ckpt_dir(run_id, w) for run_id in CFG.pretrain.runs for w in CFG.pretrain.milestones]


for _run_id, _run in CFG.pretrain.runs.items():

    rule:
        name:
            f"pretrain_{_run_id}"
        input:
            tokens=f"{corpus_dir(_run.corpus)}/tokens.bin",
            meta=f"{corpus_dir(_run.corpus)}/tokens.json",
            tokenizer=f"{corpus_dir(_run.corpus)}/tokenizer",
        output:
            ckpts=[directory(ckpt_dir(_run_id, w)) for w in CFG.pretrain.milestones],
            log=f"{RESULTS}/pretrain/{_run_id}/log.parquet",
        params:
            section=section(CFG.pretrain_job(_run_id)),
            work=f"{RESULTS}/pretrain/{_run_id}/work",
            ckpts=f"{RESULTS}/pretrain/{_run_id}",
        resources:
            gpu=1,
        conda:
            GPU_ENV
        log:
            log_path("pretrain", _run_id),
        benchmark:
            bench_path("pretrain", _run_id)
        shell:
            "{STORYRL} pretrain --section {params.section:q} --tokens {input.tokens}"
            " --tokens-meta {input.meta} --tokenizer {input.tokenizer} --work-dir {params.work}"
            " --checkpoint-dir {params.ckpts} --log {output.log} > {log} 2>&1"
