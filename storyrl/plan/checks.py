"""Plan-time checks that read files of an earlier run, so that a job does not stop hours later
in a queue for what planning can already see."""

import os

from storyrl.config import Config, ConfigError
from storyrl.plan import Plan
from storyrl.pretrain.schedule import plan_from_meta, stream_is_current


def unreachable_milestones(plan: Plan) -> tuple[list[str], list[str]]:
    """(errors, warnings): where a corpus is already tokenized (a rerun), what the pretraining
    job would stop with at its start, after Snakemake has removed every published checkpoint of
    the run. An error when the stream was made with the current corpus and tokenizer sections
    (tokens.json's `made_with`), so it will not be rebuilt; a warning otherwise: a changed
    section reruns the tokens rule, and the new stream may reach the milestone."""
    cfg: Config = plan.cfg
    errors, warnings = [], []
    for run_id, run in cfg.pretrain.runs.items():
        meta = plan.corpus_dir(run.corpus, "tokens.json")
        if not os.path.exists(meta):
            continue
        try:
            plan_from_meta(
                meta,
                cfg.models[run.model].n_positions,
                cfg.pretrain.training,
                cfg.pretrain.milestones,
            )
        except (ConfigError, KeyError, ValueError) as err:
            if stream_is_current(meta, cfg.corpora[run.corpus], cfg.tokenizer):
                errors.append(f"pretraining run {run_id} with the token stream of {meta}: {err}")
            else:
                warnings.append(
                    f"WARNING: pretraining run {run_id} with the token stream of {meta}: {err}. "
                    "Its job will stop at start unless the corpus changes."
                )
    return errors, warnings
