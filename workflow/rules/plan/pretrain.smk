# The pretrain rules' plan (pretrain.smk): the pretraining targets, inputs and launcher, and the
# plan-time milestone check.


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
