"""Figures of the RL runs: before/after, dynamics, score shares, entropy, the equivalence curve.

Each function takes DataFrames from `load`, an output path (suffix optional) and the analysis
config, and writes the figure as PDF and PNG.
"""

import numpy as np
import pandas as pd

from storyrl.analysis import style
from storyrl.analysis.equivalence import compute_equivalence, rl_words_text
from storyrl.analysis.load import CRITERIA, SCALE, AnalysisError, words_axis_label
from storyrl.analysis.stats import interval
from storyrl.analysis.tables import before_after_table
from storyrl.config import AnalysisConfig


# ----------------------------------------------------------------- the paper's units (config)
def length_label(cfg: AnalysisConfig) -> str:
    return f"story length ({cfg.length_unit})"


def x_label(cfg: AnalysisConfig) -> str:
    return style.BUDGET_LABEL if cfg.x_axis == "words" else style.INTERACTIONS_LABEL


def smooth(y, cfg: AnalysisConfig, mode: str = "nearest") -> np.ndarray:
    """A per-step series smoothed as `cfg.smoothing` says (the paper: Gaussian, sigma 30 steps,
    edges continued as `mode` says: the end values, or mirrored)."""
    y = np.asarray(y, dtype=float)
    if cfg.smoothing == "gaussian":
        from scipy.ndimage import gaussian_filter1d

        return gaussian_filter1d(y, sigma=cfg.smooth_sigma, mode=mode)
    return pd.Series(y).rolling(cfg.smooth_steps, min_periods=1).mean().to_numpy()


DYNAMICS = {
    "teacher_score": ("teacher_score_mean", SCALE, "Teacher score"),
    "length": (None, 1, "Story length"),
    "kl": ("kl", 1, "KL"),
}


def dynamics_data(steps, cfg: AnalysisConfig = AnalysisConfig()) -> pd.DataFrame:
    """What `rl_dynamics` draws: per run and panel, x (interaction words or stories) and the
    smoothed y, one row per step; panel `score_length`: x the smoothed story length, y the
    smoothed teacher score, both with the edges of `score_length_mode`."""
    length = "response_words_mean" if cfg.length_unit == "words" else "response_tokens_mean"
    parts = []
    for run_id, g in steps.sort_values("step").groupby("run_id", sort=True):
        x = g.budget_words if cfg.x_axis == "words" else g.stories
        series = {p: (x, smooth(g[col or length] * k, cfg)) for p, (col, k, _) in DYNAMICS.items()}
        mode = cfg.score_length_mode
        series["score_length"] = (
            smooth(g[length], cfg, mode),
            smooth(g.teacher_score_mean * SCALE, cfg, mode),
        )
        for panel, (px, py) in series.items():
            parts.append(
                pd.DataFrame(
                    {
                        "run_id": run_id,
                        "panel": panel,
                        "step": g.step.to_numpy(),
                        "x": np.asarray(px),
                        "y": py,
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def run_label(words, seed, variant) -> str:
    label = f"{words_axis_label(words)} pre"
    if seed is not None and not pd.isna(seed):
        label += f", seed {seed}"
    return label if variant == "base" else f"{label} ({variant})"


def _runs(df):
    """(run_id, pretrain_words, seed, variant) per run, ordered by size then seed."""
    runs = df.groupby("run_id")[["pretrain_words", "seed", "variant"]].first().reset_index()
    return runs.sort_values(["pretrain_words", "variant", "seed"], ignore_index=True)


def before_after(steps, rollouts, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Teacher score and story length before and after RL against pretraining words."""
    t = before_after_table(steps, rollouts, cfg)
    t = t[t.variant == "base"] if (t.variant == "base").any() else t
    fig, axes = style.figure(1, 2)
    ax = axes[0, 0]
    for win, label in (("before", "before RL"), ("after", "after RL")):
        err = np.abs(t[[f"{win}_lo", f"{win}_hi"]].to_numpy().T - t[win].to_numpy())
        ax.errorbar(
            t.pretrain_words,
            t[win],
            yerr=err,
            marker="o",
            capsize=3,
            color=style.BEFORE_AFTER[win],
            label=label,
        )
    ax.set(
        xlabel=style.PRETRAIN_LABEL,
        ylabel=style.SCORE_LABEL,
        title=(
            f"Teacher score (first/last {cfg.window_steps} groups, the authors' regex)"
            if cfg.score_statistic == "authors_regex"
            else f"Teacher score (first/last {cfg.window_steps} steps)"
        ),
    )
    ax = axes[0, 1]
    for win, label in (("before", "before RL"), ("after", "after RL")):
        ax.plot(
            t.pretrain_words,
            t[f"{cfg.length_unit}_{win}"],
            marker="o",
            color=style.BEFORE_AFTER[win],
            label=label,
        )
    ax.set(xlabel=style.PRETRAIN_LABEL, ylabel=length_label(cfg), title="Story length")
    for ax in axes[0]:
        style.words_axis(ax, ticks=t.pretrain_words)
        ax.legend(loc="best")
    return style.save(fig, output)


def rl_dynamics(steps, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Teacher score, story length and KL against interaction words or stories, one line per run,
    and the teacher score against story length (each run's trajectory from a white diamond to a
    dot, as the paper's panel); smoothed as `cfg.smoothing` says (`dynamics_data` holds the
    numbers)."""
    runs = _runs(steps)
    colors = style.size_colors(runs.pretrain_words)
    dashes = style.seed_styles(runs.seed.astype(str))
    data = dynamics_data(steps, cfg)
    ylabels = {
        "teacher_score": style.SCORE_LABEL,
        "length": length_label(cfg),
        "kl": "KL to the reference (nats/story)",
    }
    fig, axes = style.figure(1, 4, width=3.9)
    for _, r in runs.iterrows():
        kw = dict(color=colors[int(r.pretrain_words)], ls=dashes[str(r.seed)], lw=1.4)
        for ax, (panel, (_, _, title)) in zip(axes[0], DYNAMICS.items()):
            d = data[(data.run_id == r.run_id) & (data.panel == panel)]
            ax.plot(d.x, d.y, label=run_label(r.pretrain_words, r.seed, r.variant), **kw)
            ax.set(xlabel=x_label(cfg), ylabel=ylabels[panel], title=title)
        # The paper's trajectory panel: start as a white diamond, end as a dot.
        d = data[(data.run_id == r.run_id) & (data.panel == "score_length")]
        ax = axes[0, 3]
        ax.plot(d.x, d.y, **kw)
        ax.scatter(d.x.iloc[:1], d.y.iloc[:1], marker="D", facecolor="white", color=kw["color"])
        ax.scatter(d.x.iloc[-1:], d.y.iloc[-1:], marker="o", color=kw["color"])
        ax.set(xlabel=length_label(cfg), ylabel=style.SCORE_LABEL, title="Score against length")
    for ax in axes[0, :3]:
        style.words_axis(ax, log=False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="run")
    return style.save(fig, output)


def default_share_runs(rollouts) -> list[str]:
    """One run per pretraining size: the base variant's lowest seed."""
    runs = _runs(rollouts)
    return list(runs.groupby("pretrain_words").run_id.first())


def score_shares(rollouts, output, cfg: AnalysisConfig = AnalysisConfig(), runs=None):
    """Share of stories scored 0, 1, 2, 3 on each criterion over interaction words (stacked),
    one row per run; stories whose teacher reply did not parse are left out."""
    if rollouts is None or rollouts.empty:
        raise AnalysisError("score_shares: needs rollouts.parquet of at least one run")
    runs = runs or default_share_runs(rollouts)
    info = _runs(rollouts).set_index("run_id")
    fig, axes = style.figure(len(runs), 3, width=3.4, height=1.9, sharex="row", sharey=True)
    for i, run_id in enumerate(runs):
        run = rollouts[rollouts.run_id == run_id]
        # Interactions: every story the run has written by the end of each step, parsed or not.
        stories = run.groupby("step").size().sort_index().cumsum()
        g = run[run.parsed]
        if g.empty:
            raise AnalysisError(f"score_shares: run '{run_id}' has no parsed stories")
        g = g.assign(stories=g.step.map(stories))
        xcol = "budget_words" if cfg.x_axis == "words" else "stories"
        if cfg.smoothing == "gaussian":  # the paper: per-step shares, Gaussian-smoothed
            bins = g.step
        else:
            bins = pd.cut(g.step, min(cfg.share_bins, g.step.nunique()), labels=False)
        x = g.groupby(bins)[xcol].mean()
        for j, crit in enumerate(CRITERIA):
            has = g[crit].notna()  # a parsed reply may still lack this criterion's number
            shares = pd.crosstab(bins[has], g.loc[has, crit].astype(int), normalize="index")
            shares = shares.reindex(index=x.index, columns=range(4), fill_value=0.0).to_numpy()
            if cfg.smoothing == "gaussian":
                shares = np.stack([smooth(c, cfg) for c in shares.T], axis=1)
            ax = axes[i, j]
            ax.stackplot(
                x.to_numpy(),
                shares.T,
                colors=style.SHARE_COLORS,
                labels=[f"score {k}" for k in range(4)],
                alpha=0.9,
            )
            ax.set_ylim(0, 1)
            ax.margins(x=0)
            style.words_axis(ax, log=False)
            if i == 0:
                ax.set_title(crit.capitalize())
            if j == 0:
                r = info.loc[run_id]
                ax.set_ylabel(f"{run_label(r.pretrain_words, r.seed, r.variant)}\nshare")
            if i == len(runs) - 1:
                ax.set_xlabel(x_label(cfg))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right center", title="teacher score")
    return style.save(fig, output)


def entropy(steps, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Story length and teacher score against the entropy per word (or token, `length_unit`) of
    the sampled stories (each point is one RL step: summed -log p of its stories / their
    length)."""
    runs = _runs(steps)
    colors = style.size_colors(runs.pretrain_words)
    unit = cfg.length_unit.removesuffix("s")
    length = steps["response_words_mean" if unit == "word" else "response_tokens_mean"]
    d = steps.assign(length=length, entropy_per=steps.entropy / length.where(length > 0))
    fig, axes = style.figure(1, 2)
    for words, g in d.groupby("pretrain_words"):
        kw = dict(s=10, alpha=0.6, color=colors[int(words)], label=f"{words_axis_label(words)} pre")
        axes[0, 0].scatter(g.entropy_per, g.length, **kw)
        axes[0, 1].scatter(g.entropy_per, g.teacher_score_mean * SCALE, **kw)
    xlabel = f"entropy per {unit} (nats)"
    axes[0, 0].set(xlabel=xlabel, ylabel=length_label(cfg), title="Story length")
    axes[0, 1].set(xlabel=xlabel, ylabel=style.SCORE_LABEL, title="Teacher score")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="run start", markerscale=2)
    return style.save(fig, output)


def equivalence(story_eval, steps, rollouts, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Both readings of 'N RL words ≈ M pretraining words', one panel each (equivalence.METHODS).
    Left, the paper's: each checkpoint's first-batches score, and each run's last-batches
    score at its own starting checkpoint, joined to the nearest checkpoint's own point when
    the score lies among the checkpoints'. Right, ours: the monotone curve through the
    checkpoints' scores and where each run's after-RL score meets it. A run above (or below)
    every checkpoint is drawn where it started, with no equivalent: nothing is extrapolated."""
    table, cb = compute_equivalence(story_eval, steps, rollouts, cfg)
    curve = cb.curve
    colors = style.size_colors(table.pretrain_words)
    fig, axes = style.figure(1, 2, width=5.2, height=5.6, sharey=True)
    n = cfg.window_steps

    ax = axes[0, 0]
    before = table.attrs["paper_before"]
    ax.scatter(
        list(before),
        list(before.values()),
        marker="s",
        color="0.3",
        zorder=3,
        label=f"checkpoints: first {n} batches",
    )
    for _, r in table[table.method == "paper"].iterrows():
        ok = r.status == "ok" and np.isfinite(r.equivalent_words)
        target = (r.equivalent_words, before[int(r.equivalent_words)]) if ok else None
        _run_point(ax, r, colors[int(r.pretrain_words)], target)
    ax.set(title=f"paper: last {n} batches vs nearest checkpoint")

    ax = axes[0, 1]
    lo_hi = np.array([interval(b, cfg.ci) for b in cb.boot])
    ax.errorbar(
        cb.words,
        cb.means,
        yerr=np.abs(lo_hi.T - cb.means),
        fmt="o",
        color="0.3",
        capsize=3,
        label="checkpoints: "
        + (
            "story evaluation"
            if table.curve_source.eq("story_eval").any()
            else f"first {n} batches"
        ),
        zorder=3,
    )
    grid = np.logspace(curve.x[0], curve.x[-1], 400)
    ax.plot(grid, curve(grid), color="0.3", lw=1.5, label="monotone fit", zorder=2)
    for _, r in table[table.method == "curve"].iterrows():
        ok = r.status == "ok" and np.isfinite(r.equivalent_words)
        _run_point(
            ax, r, colors[int(r.pretrain_words)], (r.equivalent_words, r.after) if ok else None
        )
    ax.set(title=f"curve (ours): {cfg.ci:.0%} bootstrap interval in the table")
    for ax in axes[0]:
        style.words_axis(ax)
        ax.set(xlabel=style.PRETRAIN_LABEL)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize="x-small")
    axes[0, 0].set(ylabel=style.SCORE_LABEL)
    fig.suptitle("After RL, each run (★ at its own start) scores as the checkpoint of ...")
    return style.save(fig, output)


def _run_point(ax, r, color, target) -> None:
    """The run's after-RL score at its own starting checkpoint; a dotted arrow to the point it
    is read as equivalent to (None: no equivalent)."""
    ax.scatter(
        [r.pretrain_words],
        [r.after],
        marker="*",
        s=110,
        color=color,
        edgecolor="white",
        zorder=5,
        label=f"{r.run_id}: {_eq_text(r)}",
    )
    if target is not None:
        ax.annotate(
            "",
            xy=target,
            xytext=(r.pretrain_words, r.after),
            arrowprops=dict(arrowstyle="->", color=color, lw=1.2, ls=":"),
            zorder=4,
        )


def _eq_text(r) -> str:
    rl = rl_words_text(r.rl_words)
    if r.status == "below_start":
        return f"{r.after:.2f} after {rl} RL words, not above its own start: no estimate"
    if r.status == "above_max":
        return f"{r.equivalent} (above every checkpoint; not extrapolated)"
    if r.status == "below_min":
        return f"{r.equivalent} (below every checkpoint)"
    if r.status == "between":
        return f"between {r.equivalent}, near neither: no estimate"
    if not np.isfinite(r.extra_words):
        return "no estimate"
    sign = "+" if r.extra_words >= 0 else ""
    return f"≈ {r.equivalent} ({sign}{words_axis_label(r.extra_words)} after {rl} RL words)"
