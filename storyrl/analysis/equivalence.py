"""The equivalence number: 'N RL words ≈ M pretraining words', one row per RL run and method
(METHODS), from the before/after windows of `tables` and the checkpoints' scores."""

import numpy as np
import pandas as pd

from storyrl.analysis.load import SCALE, AnalysisError, words_axis_label
from storyrl.analysis.stats import CurveBootstrap, equivalent_words, nearest_checkpoint, stream
from storyrl.analysis.tables import paper_runs, score_units, window_groups, window_units
from storyrl.config import AnalysisConfig

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
        shown, _ = paper_runs(g, cfg)
        out[int(words)] = float(
            np.mean([x.mean() for x in window_groups(shown, "before").values()])
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
