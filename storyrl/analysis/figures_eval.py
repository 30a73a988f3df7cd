"""Figures of the BabyLM evaluation: full-set bars with the RL delta, fast-set accuracy over
checkpoints (pretraining and RL)."""

import numpy as np
import pandas as pd

from storyrl.analysis import style
from storyrl.analysis.load import TASK_LABELS, AnalysisError, words_axis_label
from storyrl.analysis.tables import babylm_table
from storyrl.config import AnalysisConfig

PANELS = {
    "accuracy": "accuracy (%)",
    "spearman": "Spearman ρ",
    "delta_r2": "reading: ΔR² (%)",
    "pearson": "AoA: Pearson r",
    "surprisal": "surprisal (nats)",
}
"""A panel per kind of metric (by prefix), so that no axis mixes units."""


def _is_rho(metric) -> bool:
    return str(metric).startswith("spearman")


def _panel(metric) -> str:
    return next(
        (label for prefix, label in PANELS.items() if str(metric).startswith(prefix)), str(metric)
    )


def babylm(
    scores,
    baselines,
    output,
    cfg: AnalysisConfig = AnalysisConfig(),
    pre_model=None,
    rl_models=None,
):
    """Bars per task: baselines (if any), pre and RL; the RL delta written above each pair.
    Each kind of metric (accuracy %, Spearman ρ, the official pipeline's reading ΔR²) gets its
    own panel."""
    t = babylm_table(scores, baselines, cfg, pre_model, rl_models)
    value_cols = [
        c
        for c in t.columns
        if c not in ("task_id", "task", "metric", "RL delta", "RL seed mean", "RL seed sd")
    ]
    pre_col = next(c for c in value_cols if c.endswith("-pre"))
    rl_col = next((c for c in value_cols if c.endswith("-RL")), None)
    panels = t.metric.map(_panel)
    groups = [(label, t[panels == label]) for label in dict.fromkeys(panels)]
    widths = [max(len(g), 1) for _, g in groups]
    fig, axes = style.figure(
        1, len(groups), width=1.0, height=3.8, gridspec_kw={"width_ratios": widths}
    )
    fig.set_size_inches(max(6.5, 1.15 * sum(widths) + 2.5), 3.8)
    colors = dict(zip(value_cols, style.sns.color_palette("muted", len(value_cols))))
    colors[pre_col] = style.BEFORE_AFTER["before"]
    if rl_col:
        colors[rl_col] = style.BEFORE_AFTER["after"]
    w = 0.8 / len(value_cols)
    for ax, (ylabel, g) in zip(axes[0], groups):
        x = np.arange(len(g))
        for k, col in enumerate(value_cols):
            ax.bar(x + (k - (len(value_cols) - 1) / 2) * w, g[col], w, color=colors[col], label=col)
        if rl_col:
            top = (
                g[[pre_col, rl_col]].max(axis=1).clip(lower=0)
            )  # above zero: clear of negative bars
            pad = 0.02 * np.nanmax(np.abs(g[value_cols].to_numpy(dtype=float)))
            for xi, (d, y) in enumerate(zip(g["RL delta"], top)):
                if np.isfinite(d):
                    ax.text(
                        xi + 0.4 - w,
                        y + pad,
                        f"Δ{d:+.2f}",
                        ha="center",
                        va="bottom",
                        fontsize="small",
                        color=style.BEFORE_AFTER["after"],
                    )
        ax.set_xticks(x, [TASK_LABELS.get(i, i) for i in g.task_id], rotation=30, ha="right")
        ax.set(ylabel=ylabel, xlabel="")
        ax.margins(y=0.12)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="model")
    fig.suptitle(f"BabyLM evaluation (full sets): {pre_col} vs {rl_col or '(no RL model)'}")
    return style.save(fig, output)


def _fast(scores):
    fast = scores[scores.task.str.endswith("_fast")].copy()
    if fast.empty:
        raise AnalysisError("fast_eval: no fast-set scores (tasks named '<task>_fast')")
    fast["task_id"] = fast.task.str.removesuffix("_fast")
    fast["label"] = fast.task_id.map(lambda t: TASK_LABELS.get(t, t))
    return fast


def fast_eval_pretrain(scores, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Fast-set accuracy of every pretraining checkpoint against pretraining words, one line
    per task (Spearman tasks in their own panel)."""
    fast = _fast(scores)
    pre = fast[fast.rl_words == 0]
    if pre.empty:
        raise AnalysisError("fast_eval_pretrain: no pretraining checkpoint (rl_words = 0)")
    parts = [
        (lbl, g)
        for lbl, g in (
            ("accuracy (%)", pre[~pre.metric.map(_is_rho)]),
            ("Spearman ρ", pre[pre.metric.map(_is_rho)]),
        )
        if len(g)
    ]
    fig, axes = style.figure(1, len(parts), width=4.4, height=3.4)
    for ax, (ylabel, g) in zip(axes[0], parts):
        for label, gt in g.groupby("label", sort=False):
            m = gt.groupby("pretrain_words").value.mean()
            ax.plot(m.index, m.to_numpy(), marker="o", ms=4, label=label)
        style.words_axis(ax)
        ax.set(xlabel=style.PRETRAIN_LABEL, ylabel=ylabel)
        ax.legend(fontsize="small", loc="best")
    fig.suptitle("Fast evaluation over pretraining checkpoints")
    return style.save(fig, output)


MARKERS = ["o", "s", "^", "D", "v", "P"]
LINESTYLES = ["-", "--", ":", "-."]
SCALES = {False: (0.0, 100.0), True: (-1.0, 1.0)}
"""The y range of a panel by metric (is it Spearman's rho?): the metric's whole range, the
same in every panel, so a difference of a few items looks as small as it is."""


def fast_eval_rl(scores, output, cfg: AnalysisConfig = AnalysisConfig()):
    """Fast-set scores over RL checkpoints: one panel per task, one line per starting size
    (mean over seeds), starting from the pretraining checkpoint's score at 0 RL words. Every
    panel spans its metric's whole range (accuracy 0-100 %, rho -1 to 1); each start has its
    own marker, line style and a small sideways offset, so equal scores stay visible."""
    fast = _fast(scores)
    starts = sorted(fast.loc[fast.rl_words > 0, "pretrain_words"].unique())
    if not starts:
        raise AnalysisError("fast_eval_rl: no RL checkpoint (rl_words > 0) with fast-set scores")
    d = fast[fast.pretrain_words.isin(starts)]
    colors = style.size_colors(starts)
    tasks = list(
        dict.fromkeys(
            d.sort_values(
                "task_id", key=lambda s: s.map({k: i for i, k in enumerate(TASK_LABELS)})
            ).label
        )
    )
    ncols = min(4, len(tasks))
    nrows = -(-len(tasks) // ncols)
    fig, axes = style.figure(nrows, ncols, width=3.2, height=2.7)
    span = float(d.rl_words.max()) or 1.0
    for ax, label in zip(axes.flat, tasks):
        g = d[d.label == label]
        rho = _is_rho(g.metric.iloc[0])
        for i, (words, gw) in enumerate(g.groupby("pretrain_words")):
            m = gw.groupby("rl_words").value.mean()
            dodge = (i - (len(starts) - 1) / 2) * 0.012 * span
            ax.plot(
                m.index + dodge,
                m.to_numpy(),
                marker=MARKERS[i % len(MARKERS)],
                ms=6 - 1.2 * (i % 3),
                mfc="white" if i % 2 else colors[int(words)],
                ls=LINESTYLES[i % len(LINESTYLES)],
                lw=1.3,
                color=colors[int(words)],
                label=f"{words_axis_label(words)} pre",
            )
        style.words_axis(ax, log=False)
        ax.set_ylim(*SCALES[rho])
        items = pd.to_numeric(g["n_items"], errors="coerce").max() if "n_items" in g else np.nan
        ax.set_title(f"{label} ({int(items)} items)" if np.isfinite(items) else label)
        ax.set(xlabel="RL words", ylabel="ρ" if rho else "accuracy (%)")
    for ax in list(axes.flat)[len(tasks) :]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", title="run start")
    fig.suptitle("Fast evaluation over RL checkpoints (same scale in every panel)")
    return style.save(fig, output)
