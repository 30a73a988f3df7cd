"""The tables as targets: each computes its table (`tables`, `equivalence`) and writes its three files with the
columns the Markdown and LaTeX versions hide or show as word labels. Registered in `registry`;
called as `build(*inputs, output, cfg)` with the loaded inputs the registry names."""

from storyrl.analysis.equivalence import compute_equivalence
from storyrl.analysis.stories import stories_table
from storyrl.analysis.tables import babylm_table, before_after_table, ledger_table, write_table


def before_after(steps, rollouts, output, cfg):
    return write_table(before_after_table(steps, rollouts, cfg), output, hide=["pretrain_words"])


def equivalence(story_eval, steps, rollouts, output, cfg):
    table, _ = compute_equivalence(story_eval, steps, rollouts, cfg)
    hide = ["pretrain_words", "equivalent_words", "status", "above_max_share", "curve_source"]
    return write_table(
        table,
        output,
        hide=hide,
        words=["rl_words", "extra_words", "extra_lo", "extra_hi", "per_1M_rl_words"],
    )


def babylm(scores, baselines, output, cfg, pre_model=None, rl_models=None):
    return write_table(
        babylm_table(scores, baselines, cfg, pre_model, rl_models), output, hide=["task_id"]
    )


def ledger(summaries, steps, output, cfg):
    """`steps` is None when no steps.parquet is given (the summaries suffice)."""
    return write_table(ledger_table(summaries, steps), output, words=["pretrain_words", "budget"])


def stories(rollouts, output, cfg):
    # Every story of a run continues the same prompt: the CSV keeps it, the others show the story.
    return write_table(stories_table(rollouts, cfg), output, hide=["prompt"], words=["rl_words"])
