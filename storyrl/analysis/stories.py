"""Stories to read: for every RL run, a few stories from the first and the last tenth of
training and its highest-scored ones, with the teacher's reply, as the paper's appendix shows
them. The choice is reproducible: each run draws from its own random stream (`stats.stream`,
seeded by the analysis seed and the run id) over its stories in (step, sample) order, so the
order of the files and of their rows changes nothing."""

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storyrl.analysis.load import CRITERIA, SCALE, AnalysisError, words_axis_label
from storyrl.analysis.stats import stream
from storyrl.config import AnalysisConfig

GROUPS = ("first", "last", "best")
TEXT_COLUMNS = ["prompt", "continuation", "teacher_reply"]


def window(n_steps: int, share: float) -> int:
    """Steps in a 'first'/'last' group: `share` of the run's `n_steps` steps, at least one."""
    return max(1, int(np.ceil(share * n_steps)))


def choose(rollouts: pd.DataFrame, cfg: AnalysisConfig) -> pd.DataFrame:
    """The chosen stories (rows of `rollouts`) with a `group` column, ordered by run and group.
    'first'/'last': a random `stories_per_group` of the stories of the first/last
    `stories_share` of the run's steps; 'best': the highest teacher scores among the stories
    the teacher's reply could be parsed for, ties broken by the same random draw."""
    if rollouts is None or rollouts.empty:
        raise AnalysisError("stories: the rollouts hold no stories")
    k = cfg.stories_per_group
    parts = []
    for run_id, r in rollouts.groupby("run_id", sort=True):
        r = r.sort_values(["step", "sample"], kind="stable", ignore_index=True)
        r = r.assign(draw=stream(cfg.seed, "story draw", run_id).random(len(r)))
        steps = np.sort(r.step.unique())
        n = window(len(steps), cfg.stories_share)
        windows = {"first": r[r.step.isin(steps[:n])], "last": r[r.step.isin(steps[-n:])]}
        for group, w in windows.items():
            parts.append(w.nsmallest(k, "draw").sort_values(["step", "sample"]).assign(group=group))
        scored = r[r.parsed.astype(bool)]
        best = scored.sort_values(["teacher_score", "draw"], ascending=[False, True]).head(k)
        parts.append(best.assign(group="best"))
    return pd.concat(parts, ignore_index=True).drop(columns="draw")


def read_texts(chosen: pd.DataFrame) -> pd.DataFrame:
    """`chosen` with the prompt, continuation and teacher reply of each story, read from its
    file (`file`, as `load.load_rollouts` gives it) for the chosen steps only."""
    texts = []
    for path, c in chosen.groupby("file", sort=True):
        keys = ["run_id", "step", "sample"]
        t = pq.read_table(
            path,
            columns=keys + TEXT_COLUMNS,
            filters=pc.field("step").isin(sorted(c.step.unique().tolist())),
        ).to_pandas()
        texts.append(c[keys + ["file"]].drop_duplicates().merge(t, on=keys, how="left"))
    t = pd.concat(texts, ignore_index=True)
    out = chosen.merge(t, on=["run_id", "step", "sample", "file"], how="left", sort=False)
    if out.continuation.isna().any():
        lost = out[out.continuation.isna()].iloc[0]
        raise AnalysisError(
            f"{lost.file}: story (step {lost.step}, sample {lost['sample']}) of "
            f"run {lost.run_id} not found when reading its text"
        )
    return out


def _one_line(text) -> str:
    """A story or reply on one line: Markdown and LaTeX table cells cannot hold line breaks."""
    return " ".join(str(text).split()) if pd.notna(text) else ""


def stories_table(rollouts: pd.DataFrame, cfg: AnalysisConfig = AnalysisConfig()) -> pd.DataFrame:
    """One row per chosen story: run, group, step and RL words at that step, teacher score
    (0-9) and criteria, length, the prompt, the story (the student's continuation) and the
    teacher's reply. Texts are put on one line."""
    t = read_texts(choose(rollouts, cfg))
    out = pd.DataFrame(
        {
            "run_id": t.run_id,
            "pretraining": t.pretrain_words.map(words_axis_label),
            "group": t.group,
            "step": t.step,
            "sample": t["sample"],
            "rl_words": t.budget_words,
            "score": t.teacher_score * SCALE,
            **{c: t[c] for c in CRITERIA},
            "words": t.n_words,
            "tokens": t.n_tokens,
            "prompt": t.prompt.map(_one_line),
            "story": t.continuation.map(_one_line),
            "teacher_reply": t.teacher_reply.map(_one_line),
        }
    )
    return out  # in `choose`'s order: by run, then GROUPS
