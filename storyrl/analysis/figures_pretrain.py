"""The pretraining figure: training loss against words seen, the milestones (the checkpoints
RL starts from) marked on each run's curve."""

import numpy as np

from storyrl.analysis import style
from storyrl.analysis.load import AnalysisError, words_axis_label
from storyrl.config import AnalysisConfig


def pretrain_loss(logs, output, cfg: AnalysisConfig = AnalysisConfig()):
    """One curve per pretraining run (log x); a marker and label where each run's curve
    reaches a milestone (the loss interpolated at its words)."""
    logs = logs[logs.words_seen > 0]
    if logs.empty:
        raise AnalysisError("pretrain_loss: the logs hold no step with words seen")
    fig, axes = style.figure(width=5.5, height=3.6)
    ax = axes[0, 0]
    runs = sorted(logs.run_id.unique())
    colors = dict(zip(runs, style.sns.color_palette("deep", len(runs))))
    for run_id, g in logs.groupby("run_id", sort=True):
        x, y = g.words_seen.to_numpy(dtype=float), g.loss.to_numpy(dtype=float)
        ax.plot(x, y, color=colors[run_id], label=run_id, lw=1.4)
        marks = [m for m in g.milestones.iloc[0] if x.min() <= m <= x.max()]
        if marks:
            ym = np.interp(marks, x, y)
            ax.scatter(
                marks, ym, color=colors[run_id], marker="o", s=28, zorder=3, edgecolor="white"
            )
            for m, v in zip(marks, ym):
                ax.annotate(
                    words_axis_label(m),
                    (m, v),
                    textcoords="offset points",
                    xytext=(0, 6),
                    ha="center",
                    fontsize="small",
                    color=colors[run_id],
                )
    style.words_axis(ax, "x")
    ax.set(xlabel="words seen (pretraining)", ylabel="training loss (nats/token)")
    if len(runs) > 1:
        ax.legend(title="run")
    return style.save(fig, output)
