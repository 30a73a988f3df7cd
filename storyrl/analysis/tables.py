"""The tables: teacher score before/after RL, the equivalence number, BabyLM, budget ledger.

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
from storyrl.analysis.stats import (
    CurveBootstrap,
    bootstrap_means,
    equivalent_words,
    interval,
    nearest_checkpoint,
    stream,
)
from storyrl.atomic import write_text
from storyrl.config import AnalysisConfig
from storyrl.layout import TABLE_FORMATS

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


def _window_groups(units, win) -> dict:
    """run id -> the run's scores (0-9) in window `win`."""
    u = units[units.window == win]
    return {r: x.teacher_score.to_numpy() * SCALE for r, x in u.groupby("run_id", sort=True)}


def _paper_runs(g: pd.DataFrame, cfg: AnalysisConfig) -> tuple[pd.DataFrame, str]:
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
        shown, seed = _paper_runs(g, cfg)
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
            groups = _window_groups(shown_scores, win)
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
            means = [x.mean() for x in _window_groups(sg, win).values()]
            row[f"{win}_seed_mean"] = float(np.mean(means))
            row[f"{win}_seed_sd"] = float(np.std(means, ddof=1)) if len(means) > 1 else np.nan
        row["seeds"] = ",".join(str(int(s)) for s in sorted(g.seed.dropna().unique()))
        row["ci_over"] = "+".join(sorted(sg.source.unique()))
        row["statistic"] = cfg.score_statistic
        if "rubric" in steps:  # load_steps: the rubric of each run's metadata
            row["rubric"] = "+".join(sorted(steps[steps.run_id.isin(g.run_id)].rubric.unique()))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- equivalence
METHODS = ("paper", "curve")
"""`paper`: the authors' reading -- a run's mean teacher score over its last `window_steps`
training batches, matched to the pretraining checkpoint whose first `window_steps` batches
(the runs started there) score closest, and only when it is clearly closest (`between`
otherwise). `curve`: ours -- the after-RL score placed on a
monotone curve through the checkpoints' scores (eval-mode story evaluation when there is one),
with a bootstrap interval. Every claim speaks of the RL words the run had."""


def paper_before_scores(steps, cfg: AnalysisConfig, rollouts=None) -> dict[int, float]:
    """Checkpoint -> mean teacher score (0-9) of the first `window_steps` batches (or the
    authors' groups, `score_statistic`) of the base runs started there: the `paper_seed` run
    where there is one, else the mean over seeds."""
    units = score_units(steps, rollouts, cfg, stories=False)
    units = units[units.window == "before"]
    base = units[units.variant == "base"] if (units.variant == "base").any() else units
    out = {}
    for words, g in base.groupby("pretrain_words", sort=True):
        shown, _ = _paper_runs(g, cfg)
        out[int(words)] = float(
            np.mean([x.mean() for x in _window_groups(shown, "before").values()])
        )
    return out


def _paper_rows(steps, cfg: AnalysisConfig, last_budget, rollouts=None) -> list[dict]:
    """The `paper` method's row of every run (see METHODS). Steps, not stories: the paper
    averaged the training batches' scores (or, with `score_statistic: authors_regex`, the
    groups its notebook re-formed)."""
    before = paper_before_scores(steps, cfg, rollouts)
    units = score_units(steps, rollouts, cfg, stories=False)
    unit = "groups" if cfg.score_statistic == "authors_regex" else "steps"
    rows = []
    for run_id, g in units[units.window == "after"].groupby("run_id", sort=True):
        start = int(g.pretrain_words.iloc[0])
        after = float(g.teacher_score.mean() * SCALE)
        others = {w: b for w, b in before.items() if w != start}
        rl_words = int(last_budget.get(run_id, 0))
        per_m = 1e6 / rl_words if rl_words else np.nan
        row = {
            "run_id": run_id,
            "method": "paper",
            "pretraining": words_axis_label(start),
            "pretrain_words": start,
            "rl_words": rl_words,
            "after": after,
            "after_source": f"last_{cfg.window_steps}_{unit}",
            "curve_source": f"first_{cfg.window_steps}_{unit}",
        }
        if not others:
            rows.append(
                {
                    **row,
                    "status": "no_checkpoint",
                    "equivalent": "",
                    "claim": "no estimate: no run from another checkpoint",
                }
            )
            continue
        eq, status = nearest_checkpoint(others, after)
        best = max(others, key=others.get)
        own = before.get(start, -np.inf)
        rl = rl_words_text(rl_words)
        # Above every other checkpoint: more than the best of them, and never less than the
        # run's own start (a run from the top checkpoint reads "> its start", not "> a lower one").
        label = (
            f"> {words_axis_label(max(best, start))}"
            if status == "above_max"
            else words_axis_label(eq)
        )
        if status == "above_max" and after <= own:
            # Above the others but not above its own start: RL made nothing bigger of it.
            label, status = "", "below_start"
            claim = (
                f"no estimate: after RL the run scores {after:.2f}, not above its own start "
                f"({words_axis_label(start)}: {own:.2f})"
            )
        elif status == "above_max":
            claim = (
                f"{rl} words of RL > {words_axis_label(best - start)} words of "
                f"pretraining (above every other checkpoint's score; the best is "
                f"{words_axis_label(best)})"
                if best > start
                else "no estimate: no other checkpoint scores as high"
            )
        elif status == "below_min" and not after >= own:
            label = f"< {label}"
            claim = (
                f"no estimate: after RL the run scores {after:.2f}, below every checkpoint "
                f"(the lowest other: {words_axis_label(eq)}, {others[eq]:.2f})"
            )
        elif not _clearly_nearest({**others, start: own}, eq, after):
            # The run's own start counts as a neighbour here: it bounds the score from below.
            lo, hi = _bracket({**others, start: own}, after)
            label, status, eq = f"{lo[0]}–{hi[0]}", "between", np.nan
            claim = (
                f"no estimate: after RL the run scores {after:.2f}, between the {lo[0]} "
                f"({lo[1]:.2f}) and {hi[0]} ({hi[1]:.2f}) checkpoints and near neither"
            )
        else:
            status = "ok"  # clearly nearest to `eq` (below_min: between its own start and `eq`)
            claim = (
                f"{rl} words of RL ≈ {words_axis_label(eq - start)} words of "
                f"pretraining ({words_axis_label(start)} + RL ≈ {label}, the nearest "
                f"checkpoint: {others[eq]:.2f})"
            )
        rows.append(
            {
                **row,
                "equivalent": label,
                "equivalent_words": eq,
                "extra_words": eq - start,
                "per_1M_rl_words": (eq - start) * per_m,
                "claim": claim,
                "status": status,
            }
        )
    return rows


def rl_words_text(rl_words: float) -> str:
    """The RL words a claim is made for, to two significant digits (999,360 -> '1M', 6,528 ->
    '6.5K'): each claim speaks of the words the run had, never scaled to another amount."""
    return words_axis_label(float(f"{rl_words:.2g}")) if rl_words else "0"


def _bracket(scores: dict, after: float) -> tuple[tuple, tuple]:
    """(label, score) of the checkpoints whose scores lie just below and just above `after`."""
    lo = max((w for w, s in scores.items() if s <= after), key=scores.get)
    hi = min((w for w, s in scores.items() if s >= after), key=scores.get)
    return (words_axis_label(lo), scores[lo]), (words_axis_label(hi), scores[hi])


def _clearly_nearest(scores: dict, eq: float, after: float) -> bool:
    """Whether the checkpoint `eq` is nearest by a clear margin: the after-RL score lies at most
    half as far from its score as from the checkpoint's on the other side of it. With sparse
    checkpoints a score can lie far from both; calling it equal to the nearer would claim
    what the data do not show."""
    near = abs(scores[eq] - after)
    other = [abs(s - after) for s in scores.values() if (s - after) * (scores[eq] - after) < 0]
    return not other or near <= min(other) / 2


def compute_equivalence(story_eval, steps, rollouts=None, cfg: AnalysisConfig = AnalysisConfig()):
    """The equivalence table (one row per run and method, see METHODS) and the curve behind the
    `curve` method.

    Curve: teacher score (0-9) of the story evaluation of the pretraining checkpoints
    (rl_words = 0) against pretraining words; without any, the runs' before-RL scores (the
    paper's comparison). After-RL score of a run: the story evaluation of its last RL
    checkpoint if there is one, else its last `window_steps` steps (stories, else step means).
    Every run's bootstrap has its own random stream (`stats.stream`)."""
    units = window_units(steps, rollouts, cfg.window_steps)
    pre = story_eval[story_eval.rl_words == 0] if len(story_eval) else story_eval
    if len(pre):
        curve_groups = {
            int(w): g.teacher_score.to_numpy() * SCALE for w, g in pre.groupby("pretrain_words")
        }
        curve_source = "story_eval"
    else:
        b = units[units.window == "before"]
        curve_groups = {
            int(w): g.teacher_score.to_numpy() * SCALE for w, g in b.groupby("pretrain_words")
        }
        curve_source = "before_rl"
    if len(curve_groups) < 2:
        raise AnalysisError(
            "equivalence: the curve needs teacher scores of at least two "
            f"pretraining sizes, found {sorted(curve_groups)}"
        )
    cb = CurveBootstrap(curve_groups, cfg.bootstrap, cfg.seed)
    curve = cb.curve
    last_budget = steps.groupby("run_id").budget_words.max()
    rows = _paper_rows(steps, cfg, last_budget, rollouts)
    for run_id, g in units[units.window == "after"].groupby("run_id", sort=True):
        start = int(g.pretrain_words.iloc[0])
        rl_eval = (
            story_eval[(story_eval.rl_words > 0) & (story_eval.run_id == run_id)]
            if len(story_eval)
            else story_eval
        )
        if len(rl_eval):
            rl_eval = rl_eval[rl_eval.rl_words == rl_eval.rl_words.max()]
            after, source = rl_eval.teacher_score.to_numpy() * SCALE, "story_eval"
        else:
            after, source = (
                g.teacher_score.to_numpy() * SCALE,
                f"last_{cfg.window_steps}_{g.source.iloc[0]}",
            )
        r = equivalent_words(cb, start, [after], cfg.ci, stream(cfg.seed, "after", run_id))
        rl_words = int(last_budget.get(run_id, 0))
        per_m = 1e6 / rl_words if rl_words else np.nan
        rows.append(
            {
                "run_id": run_id,
                "method": "curve",
                "pretraining": words_axis_label(start),
                "pretrain_words": start,
                "rl_words": rl_words,
                "after": r["after"],
                "after_source": source,
                "equivalent": _eq_label(r["equivalent_words"], r["status"], curve),
                "equivalent_words": r["equivalent_words"],
                "extra_words": r["extra_words"],
                "extra_lo": r["extra_lo"],
                "extra_hi": r["extra_hi"],
                "per_1M_rl_words": r["extra_words"] * per_m,
                "claim": _claim(r, start, rl_words, curve),
                "status": r["status"],
                "above_max_share": r["above_max_share"],
                "curve_source": curve_source,
            }
        )
    table = pd.DataFrame(rows, columns=EQUIVALENCE_COLUMNS)
    table["order"] = table.method.map(METHODS.index)
    table = table.sort_values(["pretrain_words", "run_id", "order"], ignore_index=True).drop(
        columns="order"
    )
    table.attrs["paper_before"] = paper_before_scores(steps, cfg, rollouts)
    return table, cb


EQUIVALENCE_COLUMNS = [
    "run_id",
    "method",
    "pretraining",
    "pretrain_words",
    "rl_words",
    "after",
    "after_source",
    "equivalent",
    "equivalent_words",
    "extra_words",
    "extra_lo",
    "extra_hi",
    "per_1M_rl_words",
    "claim",
    "status",
    "above_max_share",
    "curve_source",
]


def _eq_label(words, status, curve) -> str:
    if status == "above_max":
        return f"> {words_axis_label(curve.words_range[1])}"
    if status == "below_min":
        return f"< {words_axis_label(curve.words_range[0])}"
    return words_axis_label(words)


def _claim(r: dict, start: int, rl_words: float, curve) -> str:
    """The sentence of the paper, with the interval, for the RL words the run had; never
    extrapolated past the curve."""
    rl = rl_words_text(rl_words)
    if r["status"] == "above_max":
        top = curve.words_range[1]
        if top <= start * (1 + 1e-9):
            return (
                f"no estimate: the after-RL score is above the curve's maximum "
                f"({words_axis_label(top)}; not extrapolated)"
            )
        return (
            f"{rl} words of RL > {words_axis_label(top - start)} words of pretraining "
            f"(above the curve's maximum at {words_axis_label(top)}; not extrapolated)"
        )
    hi = "> max" if np.isinf(r["extra_hi"]) else words_axis_label(r["extra_hi"])
    prefix = "< " if r["status"] == "below_min" else ""
    return (
        f"{rl} words of RL ≈ {prefix}{words_axis_label(r['extra_words'])} words of "
        f"pretraining [{words_axis_label(r['extra_lo'])}, {hi}]"
    )


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
    from storyrl.units import parse_words

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
