"""The numbers the README and docs/ quote from a default run, kept as one JSON snapshot.

`storyrl docs run --results results --output docs/data/default_run.json` reads them from a
finished run's results through the analysis readers (the same functions that make the tables),
and copies the figures the docs show. The generated blocks of the Markdown
(`storyrl.docs.blocks`) are filled from the committed snapshot, so every quoted number has one
source; a slow test makes a default run and compares its snapshot with the committed one.

Numbers are rounded to a digit more than the docs print: the snapshot records what the docs
can show, and a difference below that is not one a reader could see.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from storyrl.analysis import AnalysisError
from storyrl.analysis.load import (
    CRITERIA,
    SCALE,
    load_eval,
    load_rollouts,
    load_steps,
    words_axis_label,
)
from storyrl.core import layout

SNAPSHOT = Path("docs/data/default_run.json")
"""The committed snapshot, relative to the repository root."""
PLANS = Path("docs/data/plans.json")
"""Job counts of dry runs (the paper plan, the default config): planning needs snakemake, so
they are recorded rather than computed when the docs are filled; a slow test re-plans them."""
FIGURES = {
    "before_after": Path("docs/before_after.png"),
    "teacher_agreement": Path("docs/teacher_agreement.png"),
}
"""Figures of the default run that the docs show: results/figures/<name>.png -> the path."""
REFRESH = (
    "storyrl docs run --results results --output docs/data/default_run.json && storyrl docs fill"
)
"""The commands that bring the snapshot and the docs up to date after a default run."""

TENTH = 0.1
"""The README's RL table compares the first and last tenth of a run's steps, as the stories
table draws its 'first' and 'last' stories (analysis.stories_share's default)."""


def _r(x, digits: int = 4):
    return None if x is None or not np.isfinite(x) else round(float(x), digits)


def rl_runs(steps) -> list[dict]:
    """Per RL run, ordered by pretraining words: its steps, stories per step, the mean teacher
    score (0-1) over the first and the last tenth of its steps, and the mean story length
    (words) of its first and last step."""
    from storyrl.analysis.stories import window

    out = []
    for run_id, g in steps.groupby("run_id", sort=True):
        g = g.sort_values("step")
        n = window(len(g), TENTH)  # the stories table's own rule
        out.append(
            {
                "run_id": run_id,
                "pretrain_words": int(g.pretrain_words.iloc[0]),
                "steps": len(g),
                "stories_per_step": int(g.stories.iloc[0]),
                "first_tenth": _r(g.teacher_score_mean.iloc[:n].mean()),
                "last_tenth": _r(g.teacher_score_mean.iloc[-n:].mean()),
                "words_first_step": _r(g.response_words_mean.iloc[0], 2),
                "words_last_step": _r(g.response_words_mean.iloc[-1], 2),
            }
        )
    return sorted(out, key=lambda r: (r["pretrain_words"], r["run_id"]))


def zero_shot(scores) -> list[dict]:
    """BLiMP fast-set accuracy (%) of every pretraining checkpoint, by words."""
    rows = scores[(scores.task == "blimp_fast") & (scores.rl_words == 0)]
    rows = rows[rows.metric == "accuracy"].sort_values("pretrain_words")
    return [
        {
            "checkpoint": words_axis_label(int(r.pretrain_words)),
            "pretrain_words": int(r.pretrain_words),
            "accuracy": _r(r.value, 2),
        }
        for r in rows.itertuples()
    ]


def stories(rollouts, cfg) -> list[dict]:
    """The stories table's rows (`storyrl.analysis.stories`), as the workflow draws them."""
    from storyrl.analysis.stories import stories_table

    t = stories_table(rollouts, cfg)
    cols = ["run_id", "group", "step", "score", *CRITERIA, "words", "prompt", "story"]
    rows = t[[*cols, "teacher_reply"]].to_dict("records")
    return [{k: (_r(v, 2) if k == "score" else v) for k, v in r.items()} for r in rows]


def agreement(paths, cfg) -> dict:
    """The judge-agreement table (`storyrl.analysis.agreement.agreement_stats`): its columns in
    order, and its rows."""
    from storyrl.analysis.agreement import agreement_stats, load_agreement

    t = agreement_stats(load_agreement(paths), cfg)
    rows = [[_r(v, 6) if isinstance(v, float) else v for v in row] for row in t.itertuples(False)]
    return {"columns": list(t.columns), "rows": rows}


def snapshot(results) -> dict:
    """Everything the docs quote from the default run whose results are in `results`."""
    from storyrl.analysis.settings import from_file

    results = Path(results)
    inputs = layout.discover(results)
    config = layout.config_path(results)
    if not inputs.steps or not config.is_file():
        raise AnalysisError(
            f"{results}: not a finished run's results (no rl/*/steps.parquet or config.yaml)"
        )
    cfg = from_file(config)
    steps = load_steps(inputs.steps)
    return {
        "about": "numbers of a default run that README.md and docs/ quote; refresh: " + REFRESH,
        "score_scale": SCALE,
        "rl": rl_runs(steps),
        "zero_shot": zero_shot(load_eval(inputs.eval)),
        "stories": stories(load_rollouts(inputs.rollouts), cfg),
        "agreement": agreement(inputs.agreement, cfg) if inputs.agreement else None,
    }


def text(data: dict) -> str:
    """The snapshot as it is committed: sorted keys, one value a line, so a diff shows what
    moved."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write(results, output, figures_root=None) -> list[Path]:
    """Write the snapshot of `results` to `output`, and copy the figures the docs show under
    `figures_root` (the repository root the FIGURES paths are relative to; None: none)."""
    from storyrl.core.atomic import atomic_path, write_text

    written = []
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text(output, text(snapshot(results)))
    written.append(output)
    for name, dest in FIGURES.items() if figures_root is not None else ():
        src = layout.figure_path(results, name, ".png")
        if not src.is_file():
            raise AnalysisError(f"{src}: figure missing (the docs show it as {dest})")
        target = Path(figures_root) / dest
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        written.append(target)
    return written


def load(path) -> dict:
    """A committed snapshot or plans file; a missing or unreadable one is named."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnalysisError(f"{path}: no such file; write it with: {REFRESH}") from None
    except json.JSONDecodeError as err:
        raise AnalysisError(f"{path}: not JSON ({err})") from None
