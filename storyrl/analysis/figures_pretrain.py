"""The pretraining figure: training loss against words seen, the milestones (the checkpoints
RL starts from) marked on each run's curve."""

import numpy as np
from matplotlib.transforms import blended_transform_factory

from storyrl.analysis import style
from storyrl.analysis.load import AnalysisError, words_axis_label
from storyrl.config import AnalysisConfig

LABEL_GAP = 0.07
"""Axes fraction two milestone labels of one row keep between their centres."""


def label_rows(fractions, gap: float = LABEL_GAP) -> list[int]:
    """A row for each label at these x positions (axes fraction, ascending): the lowest row
    whose last label is at least `gap` away, so close milestones (1M, 1.2M) never overlap."""
    last: list[float] = []
    rows = []
    for f in fractions:
        row = next((i for i, x in enumerate(last) if f - x >= gap), len(last))
        if row == len(last):
            last.append(f)
        last[row] = f
        rows.append(row)
    return rows


def pretrain_loss(logs, output, cfg: AnalysisConfig = AnalysisConfig()):
    """One curve per pretraining run (log x). Every milestone is a dotted line with its label
    along the top (staggered where two are close); a marker where the run's logged curve
    reaches it (the loss interpolated at its words; none before the first logged step)."""
    logs = logs[logs.words_seen > 0]
    if logs.empty:
        raise AnalysisError("pretrain_loss: the logs hold no step with words seen")
    fig, axes = style.figure(width=5.5, height=3.8)
    ax = axes[0, 0]
    runs = sorted(logs.run_id.unique())
    colors = dict(zip(runs, style.sns.color_palette("deep", len(runs))))
    milestones = sorted({m for ms in logs.milestones for m in ms})
    for run_id, g in logs.groupby("run_id", sort=True):
        x, y = g.words_seen.to_numpy(dtype=float), g.loss.to_numpy(dtype=float)
        ax.plot(x, y, color=colors[run_id], label=run_id, lw=1.4)
        marks = [m for m in g.milestones.iloc[0] if x.min() <= m <= x.max()]
        if marks:
            ax.scatter(
                marks,
                np.interp(marks, x, y),
                color=colors[run_id],
                marker="o",
                s=28,
                zorder=3,
                edgecolor="white",
            )
    style.words_axis(ax, "x")
    if milestones:
        lo = min(logs.words_seen.min(), milestones[0]) / 1.25
        hi = max(logs.words_seen.max(), milestones[-1]) * 1.25
        ax.set_xlim(lo, hi)
        span = np.log10(hi) - np.log10(lo)
        fractions = [(np.log10(m) - np.log10(lo)) / span for m in milestones]
        top = blended_transform_factory(ax.transData, ax.transAxes)
        for m, row in zip(milestones, label_rows(fractions)):
            ax.axvline(m, color="0.55", lw=0.7, ls=":", zorder=1)
            ax.text(
                m,
                1.02 + 0.075 * row,
                words_axis_label(m),
                transform=top,
                ha="center",
                va="bottom",
                fontsize="small",
                color="0.25",
                gid="milestone",
            )
    ax.set(xlabel="words seen (pretraining)", ylabel="training loss (nats/token)")
    ax.set_title("milestones (checkpoints)", fontsize="small", loc="left", pad=28)
    if len(runs) > 1:
        ax.legend(title="run")
    return style.save(fig, output)
