"""The tables: teacher score before/after RL, BabyLM, budget ledger (the equivalence number is
`equivalence`'s), and the before/after windows both read.

Each `*_table` function takes DataFrames from `load` and returns a DataFrame; `write_table`
writes it as CSV (full precision), Markdown and LaTeX (two decimals). Teacher scores are on
the paper's 0-9 scale.
"""

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from storyrl.analysis.checks import SUMMARY_INT_KEYS
from storyrl.analysis.load import SCALE, TASK_LABELS, AnalysisError, words_axis_label
from storyrl.analysis.regex_score import regex_units
from storyrl.analysis.stats import bootstrap_means, interval, stream
from storyrl.config import AnalysisConfig
from storyrl.core.atomic import write_text
from storyrl.core.layout import TABLE_FORMATS

log = logging.getLogger(__name__)


def _words_cell(v) -> str:
    if pd.isna(v):
        return ""
    if np.isinf(v):
        return "> max" if v > 0 else "< min"
    return words_axis_label(v)


def write_table(df: pd.DataFrame, output, hide=(), words=()) -> list[Path]:
    """`output` names the table (any of .csv/.md/.tex or no suffix): all three are written.
    `hide`: columns left out of the Markdown and LaTeX versions (kept in the CSV); `words`:
    columns shown there as word labels (20M) rather than digits."""
    stem = Path(output)
    if stem.suffix in TABLE_FORMATS:
        stem = stem.with_suffix("")
    shown = df.drop(columns=[c for c in hide if c in df.columns])
    for c in words:
        if c in shown.columns:
            shown[c] = shown[c].map(_words_cell)
    texts = {
        ".csv": df.to_csv(index=False),
        # A missing value is a marked cell (–), never the text `nan`.
        # A '|' in a text cell (a story, a teacher reply) would end the Markdown cell.
        ".md": shown.map(lambda v: v.replace("|", r"\|") if isinstance(v, str) else v)
        .astype(object)
        .where(shown.notna(), None)
        .to_markdown(index=False, floatfmt=".2f", missingval="–")
        + "\n",
        ".tex": shown.to_latex(index=False, float_format="%.2f", na_rep="--", escape=True)
        .replace("ρ", r"$\rho$")
        .replace("≈", r"$\approx$")
        .replace(">", r"$>$")
        .replace("<", r"$<$"),
    }
    paths = []
    for fmt, text in texts.items():
        write_text(stem.with_suffix(fmt), text)
        paths.append(stem.with_suffix(fmt))
    return paths


# --------------------------------------------------------------------------- before / after
def windows(steps: pd.DataFrame, n: int) -> pd.DataFrame:
    """Steps with a `window` column: 'before' for a run's first `n`, 'after' for its last `n`
    (a run shorter than 2n has steps in both)."""
    rank = steps.groupby("run_id")["step"].rank(method="first")
    count = steps.groupby("run_id")["step"].transform("size")
    before = steps[rank <= n].assign(window="before")
    after = steps[rank > count - n].assign(window="after")
    short = sorted(steps.loc[count < 2 * n, "run_id"].unique())
    if short:
        log.warning("runs with fewer than %d steps, before and after overlap: %s", 2 * n, short)
    return pd.concat([before, after], ignore_index=True)


def window_units(steps, rollouts, n: int) -> pd.DataFrame:
    """Per run and window, the units a mean and its bootstrap use: the stories of the window's
    steps when the run's rollouts are given (`source` 'stories'), else the step means."""
    w = windows(steps, n)
    keys = ["run_id", "pretrain_words", "seed", "variant", "window"]
    have = set(rollouts["run_id"].unique()) if rollouts is not None and len(rollouts) else set()
    parts = []
    if have:
        sel = w[w.run_id.isin(have)][["run_id", "step", "window"]]
        stories = rollouts.merge(sel, on=["run_id", "step"])
        parts.append(
            stories[keys + ["teacher_score", "n_words", "n_tokens"]].assign(source="stories")
        )
    rest = w[~w.run_id.isin(have)]
    parts.append(
        rest[keys].assign(
            teacher_score=rest.teacher_score_mean,
            n_words=rest.response_words_mean,
            n_tokens=rest.response_tokens_mean,
            source="steps",
        )
    )
    # Sorted, so nothing downstream depends on the order the files were given in.
    return pd.concat(parts, ignore_index=True).sort_values(
        ["run_id", "window"], kind="stable", ignore_index=True
    )


def score_units(steps, rollouts, cfg: AnalysisConfig, stories: bool = True) -> pd.DataFrame:
    """The units a teacher score (0-9) is averaged over, by `analysis.score_statistic`:
    `training`, the window units (`stories`: per story where the rollouts are given, else per
    step); `authors_regex`, the authors' groups (`regex_units`)."""
    if cfg.score_statistic == "authors_regex":
        return regex_units(steps, rollouts, cfg.window_steps)
    return window_units(steps, rollouts if stories else None, cfg.window_steps)


def window_groups(units, win) -> dict:
    """run id -> the run's scores (0-9) in window `win`."""
    u = units[units.window == win]
    return {r: x.teacher_score.to_numpy() * SCALE for r, x in u.groupby("run_id", sort=True)}


def paper_runs(g: pd.DataFrame, cfg: AnalysisConfig) -> tuple[pd.DataFrame, str]:
    """The rows of the run(s) that fill the paper's columns: the `paper_seed` run where there
    is one, else all runs (their mean), and what the `seed` column then says."""
    if cfg.paper_seed is not None:
        ref = g[g.seed == cfg.paper_seed]
        if len(ref):
            return ref, str(cfg.paper_seed)
    return g, "mean"


def before_after_table(
    steps, rollouts=None, cfg: AnalysisConfig = AnalysisConfig()
) -> pd.DataFrame:
    """One row per pretraining size (and variant): mean teacher score (0-9) of the first and last
    `window_steps` steps, with bootstrap intervals. `before`/`after` are the run of seed
    `paper_seed` (the paper's columns), or the mean of run means where no run has that seed;
    `*_seed_mean`/`*_seed_sd`: mean and sd over the runs of every seed."""
    units = window_units(steps, rollouts, cfg.window_steps)  # the story lengths
    scores = score_units(steps, rollouts, cfg)
    rows = []
    for (words, variant), g in units.groupby(["pretrain_words", "variant"], sort=True):
        shown, seed = paper_runs(g, cfg)
        sg = scores[(scores.pretrain_words == words) & (scores.variant == variant)]
        shown_scores = sg[sg.run_id.isin(shown.run_id)]
        row = {
            "pretraining": words_axis_label(words),
            "pretrain_words": int(words),
            "variant": variant,
            "runs": g.run_id.nunique(),
            "seed": seed,
        }
        for win in ("before", "after"):
            groups = window_groups(shown_scores, win)
            rngs = [stream(cfg.seed, "window", r, win) for r in groups]
            boot = bootstrap_means(list(groups.values()), cfg.bootstrap, rngs)
            row[win] = float(np.mean([x.mean() for x in groups.values()]))
            row[f"{win}_lo"], row[f"{win}_hi"] = interval(boot, cfg.ci)
        row["gain"] = row["after"] - row["before"]
        for win in ("before", "after"):
            sw = shown[shown.window == win].groupby("run_id")
            row[f"words_{win}"] = float(sw.n_words.mean().mean())
            row[f"tokens_{win}"] = float(sw.n_tokens.mean().mean())
        for win in ("before", "after"):
            means = [x.mean() for x in window_groups(sg, win).values()]
            row[f"{win}_seed_mean"] = float(np.mean(means))
            row[f"{win}_seed_sd"] = float(np.std(means, ddof=1)) if len(means) > 1 else np.nan
        row["seeds"] = ",".join(str(int(s)) for s in sorted(g.seed.dropna().unique()))
        row["ci_over"] = "+".join(sorted(sg.source.unique()))
        row["statistic"] = cfg.score_statistic
        if "rubric" in steps:  # load_steps: the rubric of each run's metadata
            row["rubric"] = "+".join(sorted(steps[steps.run_id.isin(g.run_id)].rubric.unique()))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- BabyLM
MODEL_SEED = re.compile(r"-seed(?P<seed>\d+)(?:-|$)")
"""The RL seed in a model id (`<checkpoint>-seed<S>-<variant>-rl-final`)."""


def babylm_table(
    scores,
    baselines=None,
    cfg: AnalysisConfig = AnalysisConfig(),
    pre_model: str | None = None,
    rl_models=None,
) -> pd.DataFrame:
    """Per full-set task: baseline columns, `<P>-pre`, `<P>-RL` and the RL delta between them;
    `<P>-RL` is the final policy of seed `paper_seed` among the final RL models from that
    checkpoint (the paper's column), else their mean; with several seeds, `RL seed mean` and
    `RL seed sd` over all of them. Fast-set tasks (`*_fast`) are left out."""
    full = scores[~scores.task.str.endswith("_fast")]
    if full.empty:
        raise AnalysisError("babylm: no full-set eval scores (all tasks are *_fast)")
    if pre_model is None:
        pre_rows = full[full.rl_words == 0]
        if pre_rows.empty:
            raise AnalysisError("babylm: no pretraining model (rl_words = 0) has full-set scores")
        words = cfg.babylm_pretrain_words or int(pre_rows.pretrain_words.max())
        cands = pre_rows[pre_rows.pretrain_words == words]
        pre_model = cands.model_id.iloc[0]
    else:
        words = int(full.loc[full.model_id == pre_model, "pretrain_words"].iloc[0])
    if rl_models is None:
        rl = full[(full.pretrain_words == words) & (full.rl_words > 0)]
        top = rl.rl_words.max() if len(rl) else 0
        rl_models = sorted(rl[rl.rl_words >= top * (1 - cfg.final_rl_band)].model_id.unique())
    label = words_axis_label(words)
    pre = full[full.model_id == pre_model].groupby("task").value.mean()
    rl_rows = full[full.model_id.isin(rl_models)]
    per_model = rl_rows.pivot_table(index="task", columns="model_id", values="value")
    seeds = {m: (int(x["seed"]) if (x := MODEL_SEED.search(m)) else None) for m in rl_models}
    shown = [m for m in rl_models if cfg.paper_seed is not None and seeds[m] == cfg.paper_seed]
    table = pd.DataFrame({f"{label}-pre": pre})
    if len(rl_models):
        table[f"{label}-RL"] = per_model[shown or list(rl_models)].mean(axis=1)
        table["RL delta"] = table[f"{label}-RL"] - table[f"{label}-pre"]
        if len(rl_models) > 1:
            table["RL seed mean"] = per_model.mean(axis=1)
            table["RL seed sd"] = per_model.std(axis=1, ddof=1)
    if baselines is not None and len(baselines):
        table = baselines.join(table, how="outer")
    order = {k: i for i, k in enumerate(TASK_LABELS)}
    table = table.loc[sorted(table.index, key=lambda t: (order.get(t, len(order)), t))]
    metric = full.groupby("task").metric.first()
    table.insert(0, "metric", [metric.get(t, "") for t in table.index])
    table.insert(0, "task", [TASK_LABELS.get(t, t) for t in table.index])
    table.attrs["rl_models"] = list(rl_models)
    table.attrs["rl_shown"] = shown or list(rl_models)
    return table.reset_index(names="task_id")


# --------------------------------------------------------------------------- budget ledger
LEDGER_KEYS = (
    *SUMMARY_INT_KEYS,
    "epochs",
    "input_ok",
    "generated_ok",
    "epochs_ok",
)
"""Expected keys of a run's ledger summary, in the table's column order; missing keys give
empty cells and any other key is added after these."""


def ledger_table(summaries, steps=None) -> pd.DataFrame:
    """One row per RL run from its `summary.json`; a run with only a steps.parquet gets the
    totals of its last step (budget and generated words, stories, steps)."""
    from storyrl.analysis.load import RUN_ID
    from storyrl.core.units import parse_words

    rows = []
    for run_id, data in summaries:
        row = {"run_id": run_id, "source": "summary.json"}
        m = RUN_ID.match(run_id)
        if "pretrain_words" not in data and m:
            row["pretrain_words"] = parse_words(m["ckpt"])
        row.update(
            {k: v for k, v in data.items() if k != "run_id" and not isinstance(v, (dict, list))}
        )
        rows.append(row)
    done = {r["run_id"] for r in rows}
    if steps is not None:
        for run_id, g in steps.sort_values("step").groupby("run_id"):
            if run_id not in done:
                last = g.iloc[-1]
                rows.append(
                    {
                        "run_id": run_id,
                        "source": "steps.parquet",
                        "pretrain_words": int(last.pretrain_words),
                        "budget_words": int(last.budget_words),
                        "generated_words": int(last.generated_words),
                        "steps": len(g),
                        "stories": int(last.stories),
                    }
                )
    if not rows:
        raise AnalysisError("ledger: no summary.json or steps.parquet given")
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in LEDGER_KEYS and c not in ("run_id", "source")]
    df = df[["run_id"] + [k for k in LEDGER_KEYS if k in df.columns] + extra + ["source"]]
    # A key one run lacks would otherwise turn the column's integers into floats.
    df = df.astype({k: "Int64" for k in SUMMARY_INT_KEYS if k in df.columns})
    if "pretrain_words" in df:
        df = df.sort_values(["pretrain_words", "run_id"], ignore_index=True)
    return df
