"""Checks that a shared results folder holds each run once, under one configuration per
setting, with values that can be real. Pooled blindly, a stray `rl/<run>.bak/` would be a
second run, duplicated step rows heavier steps, and seeds run with different budgets one
setting's spread. Every failure names the files involved."""

import numpy as np
import pandas as pd

from storyrl.analysis import BadResults

SETTING_KEYS = ("setting_hash", "budget", "algorithm")
"""Metadata of an RL run's tables that seeds of one setting must share (those present)."""

SUMMARY_INT_KEYS = (
    "pretrain_words",
    "budget",
    "prompt_words",
    "teacher_words",
    "budget_words",
    "generated_words",
    "steps",
    "stories",
    "total_words_seen",
    "input_words",
)


def one_file_each(kind: str, owners) -> None:
    """`owners`: (id, file) pairs. The same id in two files is a copy or a rerun kept beside
    the original: which one holds the truth cannot be told from here."""
    seen: dict = {}
    for key, path in owners:
        first = seen.setdefault(key, path)
        if str(first) != str(path):
            raise BadResults(
                f"{kind} '{key}' is in two files: {first} and {path} (a copy or an old "
                "rerun? move one out of the results folder)"
            )


def no_duplicate_steps(df: pd.DataFrame, path) -> None:
    dup = df.duplicated(["run_id", "step"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise BadResults(
            f"{path}: run '{first.run_id}' has step {int(first.step)} "
            f"{int(((df.run_id == first.run_id) & (df.step == first.step)).sum())} times "
            f"({int(dup.sum())} duplicated rows in all)"
        )


def same_setting(runs: list[dict]) -> None:
    """`runs`: one dict per run with `path`, `run_id`, `pretrain_words`, `variant` and its
    metadata `meta`. Runs of one (pretraining words, variant) are pooled as seeds of one
    setting, so their SETTING_KEYS must agree."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["pretrain_words"], r["variant"]), []).append(r)
    for (words, variant), group in groups.items():
        differ = [
            key
            for key in SETTING_KEYS
            if len({str(r["meta"][key]) for r in group if key in r["meta"]}) > 1
        ]
        if differ:
            lines = "; ".join(
                f"{r['path']}: " + ", ".join(f"{k}={r['meta'].get(k, '(none)')}" for k in differ)
                for r in group
            )
            raise BadResults(
                f"runs pooled as seeds of one setting (pretrain_words={words}, variant "
                f"'{variant}') differ in {', '.join(differ)}: {lines}. Give them different "
                "variants, or keep one configuration per results folder"
            )


def check_summary(path, data: dict) -> None:
    """A summary may lack keys (each is a cell of the ledger), but not all of them: that is a
    blank row, and a key it has must hold a whole number."""
    if not any(k in data for k in SUMMARY_INT_KEYS):
        raise BadResults(
            f"{path}: not a run's ledger summary: none of {', '.join(SUMMARY_INT_KEYS)} "
            f"(keys: {', '.join(map(str, data)) or 'none'})"
        )
    for key in SUMMARY_INT_KEYS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadResults(f"{path}: '{key}' = {value!r} is not a whole number")


def finite(df: pd.DataFrame, path, columns) -> None:
    for col in columns:
        bad = ~np.isfinite(df[col].to_numpy(dtype=float))
        if bad.any():
            raise BadResults(
                f"{path}: column '{col}' has {int(bad.sum())} NaN or infinite rows "
                f"(first: row {int(np.flatnonzero(bad)[0])})"
            )
