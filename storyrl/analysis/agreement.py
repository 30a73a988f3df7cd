"""Judge agreement: how far a further teacher agrees with the run's own teacher on the same
stories (storyrl/stories/teacher/agreement.py writes the `agreement` tables), and whether the paper's headline
survives the change of judge.

- `agreement_table`: per further teacher and criterion (and the 0-9 total), Spearman's rho,
  quadratic-weighted Cohen's kappa, the exact-agreement share and the mean difference
  (further - original) with a bootstrap interval; over the stories both teachers parsed.
- `agreement_figure`: a confusion matrix per teacher and criterion.
- `headline_table`: the before/after table and both equivalence methods recomputed on the
  sample, once with the original teacher's scores and once with each further teacher's. The
  sample holds stories from every tenth of training, so "before" is the first tenth and
  "after" the last (the paper's windows are the first and last 10 batches: with a sample of a
  few hundred stories a run, a tenth is the nearest window that holds enough of them).
"""

import numpy as np
import pandas as pd

from storyrl.analysis import AnalysisError, style
from storyrl.analysis.equivalence import compute_equivalence
from storyrl.analysis.load import CRITERIA, _overrides_for, _with_runs
from storyrl.analysis.stats import interval, stream
from storyrl.analysis.tables import before_after_table, write_table
from storyrl.config import AnalysisConfig
from storyrl.core.schemas import read_metadata, read_table

ORIGINAL = "original"
"""The teacher column's value for the run's own teacher in `headline_table`."""
MEASURES = (*CRITERIA, "total")
LEVELS = {**{c: range(4) for c in CRITERIA}, "total": range(10)}


def load_agreement(paths, overrides=None) -> pd.DataFrame:
    """Every agreement file, with the run's pretraining words, seed and variant."""
    frames = []
    for p in paths:
        df = read_table(p, "agreement").to_pandas()
        frames.append(_with_runs(df, p, read_metadata(p), _overrides_for(overrides, p)))
    if not frames:
        raise AnalysisError("no agreement files given")
    # Sorted: the bootstrap and the sums must not depend on the order the files come in.
    keys = ["teacher", "run_id", "step", "sample"]
    out = pd.concat(frames, ignore_index=True).sort_values(keys, ignore_index=True)
    dup = out.duplicated(keys)
    if dup.any():
        first = out[dup].iloc[0]
        raise AnalysisError(
            f"agreement: teacher '{first.teacher}' scored story ({first.run_id}, step "
            f"{first.step}, sample {first['sample']}) in more than one file"
        )
    return out


def _pairs(g: pd.DataFrame, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """(original, further) scores of one measure over the stories both teachers parsed."""
    both = g[g.parsed & g.orig_parsed.fillna(False).astype(bool)]
    if measure == "total":
        return (
            both[[f"orig_{c}" for c in CRITERIA]].sum(axis=1).to_numpy(int),
            both[list(CRITERIA)].sum(axis=1).to_numpy(int),
        )
    return both[f"orig_{measure}"].to_numpy(int), both[measure].to_numpy(int)


def agreement_stats(agreement: pd.DataFrame, cfg: AnalysisConfig = AnalysisConfig()):
    """One row per (further teacher, measure); see the module's docstring."""
    from scipy.stats import spearmanr

    rows = []
    for teacher, g in agreement.groupby("teacher", sort=True):
        for m in MEASURES:
            orig, other = _pairs(g, m)
            row = {"teacher": teacher, "measure": m, "stories": len(g), "pairs": len(orig)}
            if len(orig) == 0:
                rows.append(row)
                continue
            constant = len(set(orig)) < 2 or len(set(other)) < 2
            diff = other - orig
            rng = stream(cfg.seed, "agreement", teacher, m)
            boot = diff[rng.integers(0, len(diff), (cfg.bootstrap, len(diff)))].mean(axis=1)
            lo, hi = interval(boot, cfg.ci)
            row.update(
                spearman_rho=np.nan if constant else float(spearmanr(orig, other).statistic),
                kappa_quadratic=_kappa(orig, other, m),
                exact_share=float((diff == 0).mean()),
                mean_original=float(orig.mean()),
                mean_other=float(other.mean()),
                mean_diff=float(diff.mean()),
                diff_lo=lo,
                diff_hi=hi,
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _kappa(orig, other, measure) -> float:
    """Quadratic-weighted kappa; NaN where it is undefined (both judges gave one value)."""
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        k = cohen_kappa_score(orig, other, weights="quadratic", labels=list(LEVELS[measure]))
    return float(k)


def agreement_table(agreement, output, cfg):
    return write_table(agreement_stats(agreement, cfg), output)


def agreement_figure(agreement, output, cfg):
    """Confusion matrices: rows are the original teacher's score, columns the further one's;
    one panel per further teacher (rows) and measure (columns), counts over the stories both
    parsed."""
    import seaborn as sns

    teachers = sorted(agreement.teacher.unique())
    fig, axes = style.figure(len(teachers), len(MEASURES), width=3.2, height=3.0)
    for i, t in enumerate(teachers):
        g = agreement[agreement.teacher == t]
        for j, m in enumerate(MEASURES):
            orig, other = _pairs(g, m)
            levels = list(LEVELS[m])
            counts = pd.crosstab(
                pd.Categorical(orig, levels), pd.Categorical(other, levels), dropna=False
            )
            ax = axes[i][j]
            sns.heatmap(counts, annot=len(levels) <= 4, fmt="d", cbar=False, cmap="Blues", ax=ax)
            ax.set_title(f"{t}: {m}", fontsize=9)
            ax.set_xlabel(f"{t} score")
            ax.set_ylabel("original teacher's score")
    return style.save(fig, output)


def sampled_runs(agreement: pd.DataFrame, steps: pd.DataFrame | None, score: str):
    """The sample as a run table the before/after and equivalence code reads: one pseudo-step
    per tenth of training (its stories' mean of `score`, a 0-1 teacher score column), and the
    stories themselves as rollouts with that score. `budget_words` is the run's last (from its
    steps when given) so the equivalence's 'RL words' stay the run's."""
    budget = steps.groupby("run_id").budget_words.max() if steps is not None else pd.Series()
    stories = agreement.assign(
        step=agreement.tenth + 1,
        teacher_score=agreement[score],
        budget_words=agreement.run_id.map(budget).fillna(0).astype("int64"),
    )
    keys = ["run_id", "step", "pretrain_words", "seed", "variant", "budget_words"]
    pseudo = (
        stories.groupby(keys, dropna=False, sort=True)
        .agg(
            teacher_score_mean=("teacher_score", "mean"),
            response_words_mean=("n_words", "mean"),
            response_tokens_mean=("n_tokens", "mean"),
        )
        .reset_index()
    )
    return pseudo, stories


def headline_stats(agreement, steps=None, cfg: AnalysisConfig = AnalysisConfig()) -> pd.DataFrame:
    """Before/after (first and last tenth) per pretraining size and both equivalence readings
    per run, under the original teacher and under each further one, on the same sample."""
    # One pseudo-step = one tenth. Each judge's parsed scores of the same sample are compared:
    # the authors' regex re-reads a run's own replies, which a sample of re-scores lacks.
    one = cfg.model_copy(update={"window_steps": 1, "score_statistic": "training"})
    rows = []
    teachers = sorted(agreement.teacher.unique())
    # Every further teacher scored the same sample: the original's numbers are computed once.
    judges = [(ORIGINAL, teachers[0], "orig_teacher_score")]
    judges += [(t, t, "teacher_score") for t in teachers]
    for judge, teacher, col in judges:
        g = agreement[agreement.teacher == teacher]
        pseudo, stories = sampled_runs(g, steps, col)
        ba = before_after_table(pseudo, stories, one)
        for _, r in ba.iterrows():
            rows.append(
                {
                    "teacher": judge,
                    "what": "before/after",
                    "pretraining": r.pretraining,
                    "variant": r.variant,
                    "before": r.before,
                    "after": r.after,
                    "gain": r.gain,
                }
            )
        if pseudo.pretrain_words.nunique() < 2:
            continue  # the equivalence needs two starting points
        eq, _ = compute_equivalence(pd.DataFrame(), pseudo, stories, one)
        for _, r in eq.iterrows():
            rows.append(
                {
                    "teacher": judge,
                    "what": f"equivalence ({r.method})",
                    "pretraining": r.pretraining,
                    "run_id": r.run_id,
                    "after": r.after,
                    "equivalent": r.equivalent,
                    "claim": r.claim,
                }
            )
    cols = ["teacher", "what", "pretraining", "variant", "run_id", "before", "after", "gain"]
    return pd.DataFrame(rows, columns=[*cols, "equivalent", "claim"])


def headline_table(agreement, steps, output, cfg):
    return write_table(headline_stats(agreement, steps, cfg), output)
