"""One look for every figure: seaborn theme, colours per pretraining size, log word axes, and
saving as PDF and PNG."""

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from storyrl.analysis.load import SCALE, words_axis_label  # noqa: E402
from storyrl.core.atomic import atomic_path  # noqa: E402
from storyrl.core.layout import FIGURE_FORMATS  # noqa: E402

SCORE_LABEL = f"teacher score (0–{SCALE})"
LENGTH_LABEL = "story length (words)"
BUDGET_LABEL = "interaction words (RL budget)"
INTERACTIONS_LABEL = "interactions (stories)"
PRETRAIN_LABEL = "pretraining words"
SHARE_COLORS = ["#c0392b", "#e67e22", "#f1c40f", "#27ae60"]  # score 0, 1, 2, 3
BEFORE_AFTER = {"before": "#7f8c8d", "after": "#2c7fb8"}


def apply() -> None:
    # TrueType fonts in PDFs (venues reject Type 3); fontTools logs every subset at INFO.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.15,
        rc={
            "figure.dpi": 100,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "legend.frameon": False,
            "axes.titleweight": "bold",
            "pdf.fonttype": 42,
        },
    )


def figure(nrows=1, ncols=1, width=4.2, height=3.2, **kw):
    """A figure of `nrows` x `ncols` panels, each `width` x `height` inches."""
    apply()
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols, height * nrows),
        squeeze=False,
        layout="constrained",
        **kw,
    )
    return fig, axes


def size_colors(words) -> dict:
    """Pretraining size -> colour, ordered from few words (light) to many (dark)."""
    words = sorted(set(int(w) for w in words))
    pal = sns.color_palette("viridis_r", max(len(words), 2))
    return {w: pal[i] for i, w in enumerate(words)}


def seed_styles(seeds) -> dict:
    dashes = ["-", "--", ":", "-."]
    return {s: dashes[i % len(dashes)] for i, s in enumerate(sorted(set(seeds), key=str))}


def words_axis(ax, axis: str = "x", log: bool = True, ticks=None) -> None:
    """Word counts as 1M, 20M, 1B; log scale with ticks at 1, 2 and 5 per decade, or a tick at
    each of `ticks` (e.g. the pretraining sizes shown)."""
    a = ax.xaxis if axis == "x" else ax.yaxis
    if log:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        a.set_major_locator(
            LogLocator(base=10, subs=(1, 2, 5))
            if ticks is None
            else FixedLocator(sorted(set(ticks)))
        )
        a.set_minor_formatter(NullFormatter())
    a.set_major_formatter(FuncFormatter(lambda v, _: words_axis_label(v)))


def save(fig, output) -> list[Path]:
    """`output` names the figure (.pdf, .png or no suffix): both formats are written."""
    stem = Path(output)
    if stem.suffix in FIGURE_FORMATS:
        stem = stem.with_suffix("")
    paths = []
    for fmt in FIGURE_FORMATS:
        with atomic_path(stem.with_suffix(fmt)) as tmp:
            # No creation date: the same results give the same bytes (reruns, shared results).
            fig.savefig(
                tmp, format=fmt[1:], metadata={"CreationDate": None} if fmt == ".pdf" else None
            )
        paths.append(stem.with_suffix(fmt))
    plt.close(fig)
    return paths
