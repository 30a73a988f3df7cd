"""Figures of the RL runs: before/after, dynamics, score shares, entropy, the equivalence curve.

Each function takes DataFrames from `load`, an output path (suffix optional) and the analysis
config, and writes the figure as PDF and PNG.
"""

import numpy as np
import pandas as pd

from storyrl.analysis import style
from storyrl.analysis.config import AnalysisConfig
from storyrl.analysis.load import CRITERIA, SCALE, AnalysisError, words_axis_label
from storyrl.analysis.stats import interval
from storyrl.analysis.tables import before_after_table, compute_equivalence


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
        ax.errorbar(t.pretrain_words, t[win], yerr=err, marker="o", capsize=3,
                    color=style.BEFORE_AFTER[win], label=label)
    ax.set(xlabel=style.PRETRAIN_LABEL, ylabel=style.SCORE_LABEL,
           title=f"Teacher score (first/last {cfg.window_steps} steps)")
    ax = axes[0, 1]
    for win, label in (("before", "before RL"), ("after", "after RL")):
        ax.plot(t.pretrain_words, t[f"words_{win}"], marker="o", color=style.BEFORE_AFTER[win],
                label=label)
    ax.set(xlabel=style.PRETRAIN_LABEL, ylabel=style.LENGTH_LABEL, title="Story length")
    for ax in axes[0]:
        style.words_axis(ax, ticks=t.pretrain_words)
        ax.legend(loc="best")
    return style.save(fig, output)


def rl_dynamics(steps, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Teacher score, story length and KL against interaction words, one line per run
    (rolling mean over `smooth_steps` steps)."""
    runs = _runs(steps)
    colors = style.size_colors(runs.pretrain_words)
    dashes = style.seed_styles(runs.seed.astype(str))
    panels = [("teacher_score_mean", style.SCORE_LABEL, SCALE, "Teacher score"),
              ("response_words_mean", style.LENGTH_LABEL, 1, "Story length"),
              ("kl", "KL to the reference (nats/story)", 1, "KL")]
    fig, axes = style.figure(1, 3, width=3.9)
    for _, r in runs.iterrows():
        g = steps[steps.run_id == r.run_id].sort_values("step")
        for ax, (col, ylabel, k, title) in zip(axes[0], panels):
            y = (g[col] * k).rolling(cfg.smooth_steps, min_periods=1).mean()
            ax.plot(g.budget_words, y, color=colors[int(r.pretrain_words)],
                    ls=dashes[str(r.seed)], lw=1.4, label=run_label(r.pretrain_words, r.seed, r.variant))
            ax.set(xlabel=style.BUDGET_LABEL, ylabel=ylabel, title=title)
    for ax in axes[0]:
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
        g = rollouts[(rollouts.run_id == run_id) & rollouts.parsed]
        if g.empty:
            raise AnalysisError(f"score_shares: run '{run_id}' has no parsed stories")
        bins = pd.cut(g.step, min(cfg.share_bins, g.step.nunique()), labels=False)
        x = g.groupby(bins).budget_words.mean()
        for j, crit in enumerate(CRITERIA):
            has = g[crit].notna()  # a parsed reply may still lack this criterion's number
            shares = pd.crosstab(bins[has], g.loc[has, crit].astype(int), normalize="index")
            shares = shares.reindex(index=x.index, columns=range(4), fill_value=0.0)
            ax = axes[i, j]
            ax.stackplot(x.to_numpy(), shares.to_numpy().T, colors=style.SHARE_COLORS,
                         labels=[f"score {k}" for k in range(4)], alpha=0.9)
            ax.set_ylim(0, 1)
            ax.margins(x=0)
            style.words_axis(ax, log=False)
            if i == 0:
                ax.set_title(crit.capitalize())
            if j == 0:
                r = info.loc[run_id]
                ax.set_ylabel(f"{run_label(r.pretrain_words, r.seed, r.variant)}\nshare")
            if i == len(runs) - 1:
                ax.set_xlabel(style.BUDGET_LABEL)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right center", title="teacher score")
    return style.save(fig, output)


def entropy(steps, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Story length and teacher score against the entropy per word of the sampled stories
    (each point is one RL step: summed -log p of its stories / their words)."""
    runs = _runs(steps)
    colors = style.size_colors(runs.pretrain_words)
    d = steps.assign(entropy_per_word=steps.entropy / steps.response_words_mean.where(
        steps.response_words_mean > 0))
    fig, axes = style.figure(1, 2)
    for words, g in d.groupby("pretrain_words"):
        kw = dict(s=10, alpha=0.6, color=colors[int(words)], label=f"{words_axis_label(words)} pre")
        axes[0, 0].scatter(g.entropy_per_word, g.response_words_mean, **kw)
        axes[0, 1].scatter(g.entropy_per_word, g.teacher_score_mean * SCALE, **kw)
    axes[0, 0].set(xlabel="entropy per word (nats)", ylabel=style.LENGTH_LABEL, title="Story length")
    axes[0, 1].set(xlabel="entropy per word (nats)", ylabel=style.SCORE_LABEL, title="Teacher score")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="run start",
               markerscale=2)
    return style.save(fig, output)


def equivalence(story_eval, steps, rollouts, output, cfg: AnalysisConfig = AnalysisConfig()):
    """The pretraining curve (monotone fit of the checkpoints' teacher scores) and, per run,
    where its after-RL score meets the curve: 'RL from P ≈ pretraining to E'."""
    table, cb = compute_equivalence(story_eval, steps, rollouts, cfg)
    curve = cb.curve
    fig, axes = style.figure(1, 1, width=7.5, height=4.4)
    ax = axes[0, 0]
    lo_hi = np.array([interval(b, cfg.ci) for b in cb.boot])
    ax.errorbar(cb.words, cb.means, yerr=np.abs(lo_hi.T - cb.means), fmt="o", color="0.3",
                capsize=3, label="pretraining checkpoints", zorder=3)
    grid = np.logspace(curve.x[0], curve.x[-1], 400)
    ax.plot(grid, curve(grid), color="0.3", lw=1.5, label="monotone fit", zorder=2)
    colors = style.size_colors(table.pretrain_words)
    for _, r in table.iterrows():
        c = colors[int(r.pretrain_words)]
        end = r.equivalent_words if np.isfinite(r.equivalent_words) else curve.words_range[1]
        ax.annotate("", xy=(end, r.after), xytext=(r.pretrain_words, r.after),
                    arrowprops=dict(arrowstyle="->", color=c, lw=1.3))
        marker = "*" if r.status == "ok" else ">"
        ax.scatter([end], [r.after], marker=marker, s=90, color=c, zorder=4,
                   label=f"{r.run_id}: {_eq_text(r)}")
        ax.scatter([r.pretrain_words], [r.after], marker="o", s=25, facecolor="white",
                   edgecolor=c, zorder=4)
    style.words_axis(ax)
    ax.set(xlabel=style.PRETRAIN_LABEL, ylabel=style.SCORE_LABEL,
           title="After-RL score on the pretraining curve")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: not labels[i].startswith(("pretraining", "monotone")))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
               ncols=2, fontsize="small", title="after RL, the run scores as the pretraining checkpoint of")
    return style.save(fig, output)


def _eq_text(r) -> str:
    if r.status == "above_max":
        return f"{r.equivalent} (above the curve; not extrapolated)"
    sign = "+" if r.extra_words >= 0 else ""
    return f"≈ {r.equivalent} ({sign}{words_axis_label(r.extra_words)})"
