"""`storyrl teacher score`: score a Parquet file of stories and write the `teacher_scores` table."""

import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field
from tqdm import tqdm

from storyrl.config import RewardConfig, Section, TeacherConfig
from storyrl.core.atomic import check_writable
from storyrl.core.schemas import SchemaError, make_metadata, write_table
from storyrl.stories.scoring import teacher_scorer

log = logging.getLogger(__name__)


class ScoreSection(Section):
    """The `--section` of `storyrl teacher score`."""

    teacher: TeacherConfig = TeacherConfig()
    reward: RewardConfig = RewardConfig()
    max_new_tokens: int = Field(90, ge=1)
    """The student's generation limit: the length bonus is words / max_new_tokens (paper: 90)."""
    seed: int = 42
    """Teacher sampling seed (paper: the RL run's seed)."""
    batch_size: int = Field(360, ge=1)
    """Stories per teacher call; the failure threshold applies to each batch (paper batch: 360)."""


def read_stories(path: str | Path) -> tuple[list[str], list[str]]:
    """The `prompt` and `continuation` columns; a clear error names the file and the column."""
    path = Path(path)
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowInvalid) as err:
        raise SchemaError(f"{path}: not a readable Parquet file ({err})") from None
    cols = {}
    for name in ("prompt", "continuation"):
        if name not in names:
            raise SchemaError(f"{path}: column '{name}' missing (have: {', '.join(names)})")
        col = pq.read_table(path, columns=[name]).column(name)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise SchemaError(f"{path}: column '{name}' has type {col.type}, expected string")
        if col.null_count:
            row = col.to_pylist().index(None)
            raise SchemaError(f"{path}: column '{name}' is null in row {row}")
        cols[name] = col.to_pylist()
    return cols["prompt"], cols["continuation"]


def score_file(
    stories: str | Path, output: str | Path, section: ScoreSection, cache_path: str | None = None
) -> dict:
    """Score every story; write `output` atomically; return the counts written to metadata.
    Raises TeacherFailure when a batch has too many failures (scored replies stay in the
    cache, so a rerun does not pay for them again)."""
    prompts, conts = read_stories(stories)
    check_writable(output)  # before the first paid call, not after the last
    scorer = teacher_scorer(
        section.teacher, section.reward, section.max_new_tokens, section.seed, cache_path
    )
    judgements, batches = [], []
    t0 = time.perf_counter()
    with scorer:
        bs = section.batch_size
        # An empty file is one empty batch, so that it gives an empty table.
        starts = range(0, len(prompts), bs) or [0]
        for i in tqdm(starts, desc="teacher", unit="batch", disable=None):
            batch_judgements, batch_rewards = scorer(prompts[i : i + bs], conts[i : i + bs])
            judgements += batch_judgements
            batches.append(batch_rewards)
    secs = time.perf_counter() - t0
    log.info(
        "scored %d stories in %.1fs (%.0f stories/s)",
        len(judgements),
        secs,
        len(judgements) / max(secs, 1e-9),
    )
    r = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    scores = [j.scores or (None, None, None) for j in judgements]
    counts = {
        "stories": len(judgements),
        "failed_calls": sum(j.failed_call for j in judgements),
        "unparsed": sum(not j.parsed and not j.failed_call for j in judgements),
        "malformed": sum(not j.well_formed and not j.failed_call for j in judgements),
        "cache_hits": scorer.teacher.stats["cache_hits"],
    }
    data = {
        "row": list(range(len(judgements))),
        "prompt": prompts,
        "continuation": conts,
        "teacher_reply": [j.reply for j in judgements],
        "readability": [s[0] for s in scores],
        "coherence": [s[1] for s in scores],
        "creativity": [s[2] for s in scores],
        "parsed": [j.parsed for j in judgements],
        "well_formed": [j.well_formed for j in judgements],
        "failed_call": [j.failed_call for j in judgements],
        "teacher_score": r["teacher_score"].tolist(),
        "length_bonus": r["length_bonus"].tolist(),
        "reward": r["reward"].tolist(),
        "n_words": r["n_words"].tolist(),
    }
    meta = make_metadata(
        "teacher_scores",
        section.model_dump(),
        teacher=scorer.identity,
        seed=section.seed,
        max_new_tokens=section.max_new_tokens,
        stories_file=str(stories),
        counts=counts,
    )
    write_table(output, "teacher_scores", data, meta)
    return counts
