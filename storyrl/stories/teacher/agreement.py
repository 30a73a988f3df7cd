"""Judge agreement: a further teacher re-scores a seeded sample of every RL run's stories.

    rescore("strict", teacher_cfg, ["results/rl/<run>/rollouts.parquet", ...],
            ["results/agreement/strict/<run>.parquet", ...], stories_per_run=360, seed=0)

The sample is the same for every teacher (it depends on the run, the seed and N only), drawn
evenly from the ten tenths of the run's steps, so the first and the last tenth of training are
both represented: the before/after comparison is recomputed on them (storyrl/analysis/agreement.py).
One teacher is loaded once per call and scores every run's sample.
"""

import logging
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from storyrl.config import AgreementTeacher
from storyrl.core.schemas import make_metadata, read_metadata, read_table, write_table

log = logging.getLogger(__name__)

CRITERIA = ("readability", "coherence", "creativity")
TENTHS = 10


def tenths(step: pd.Series) -> pd.Series:
    """0..9: which tenth of the run's steps each step falls in (steps cut into ten equal parts)."""
    first, last = int(step.min()), int(step.max())
    return (step - first) * TENTHS // (last - first + 1)


def draw_sample(rollouts: pd.DataFrame, n: int, seed: int, run_id: str) -> pd.DataFrame:
    """`n` stories of one run, n/10 from each tenth of training (all of a tenth that has fewer),
    chosen without replacement by a stream of `seed` and the run id; sorted by step and sample."""
    tenth = tenths(rollouts["step"])
    # Its own stream per run: the sample of a run does not change when runs are added.
    rng = np.random.default_rng([seed, zlib.crc32(run_id.encode())])
    picked = []
    for t in range(TENTHS):
        rows = np.flatnonzero(tenth.to_numpy() == t)
        want = n // TENTHS + (t < n % TENTHS)
        picked.append(rows if len(rows) <= want else rng.choice(rows, want, replace=False))
    out = rollouts.iloc[np.sort(np.concatenate(picked))].assign(tenth=tenth)
    return out.sort_values(["step", "sample"], ignore_index=True)


def rescore(
    name: str,
    teacher: AgreementTeacher,
    rollouts: list,
    outputs: list,
    stories_per_run: int,
    seed: int,
) -> list[dict]:
    """Score each run's sample with `teacher` and write one `agreement` table per run (outputs
    in the order of `rollouts`). Returns a summary per run."""
    from storyrl.stories.teacher import make_teacher

    if len(rollouts) != len(outputs):
        raise ValueError(f"{len(rollouts)} rollouts files but {len(outputs)} outputs")
    judge = make_teacher(teacher, seed=seed)
    summaries = []
    try:
        for src, dst in zip(rollouts, outputs):
            summaries.append(_rescore_run(name, judge, Path(src), Path(dst), stories_per_run, seed))
    finally:
        judge.close()
    return summaries


def _rescore_run(name, judge, src: Path, dst: Path, n: int, seed: int) -> dict:
    columns = ["run_id", "step", "sample", "prompt", "continuation", *CRITERIA, "parsed"]
    columns += ["teacher_score", "n_words", "n_tokens"]
    df = read_table(src, "rollouts", columns).to_pandas()
    meta = read_metadata(src)
    run_id = str(meta.get("run_id") or (df.run_id.iloc[0] if len(df) else src.parent.name))
    if df.empty:
        raise ValueError(f"{src}: no stories to sample (the rollouts table is empty)")
    sample = draw_sample(df, n, seed, run_id)
    judgements = judge.score(sample.prompt.tolist(), sample.continuation.tolist())
    scores = [j.scores or (None, None, None) for j in judgements]
    rows = {
        "run_id": sample.run_id.tolist(),
        "step": sample.step.tolist(),
        "sample": sample["sample"].tolist(),
        "tenth": sample.tenth.tolist(),
        "teacher": [name] * len(sample),
        "teacher_reply": [j.reply for j in judgements],
        "parsed": [j.parsed for j in judgements],
        "failed_call": [j.failed_call for j in judgements],
        "teacher_score": [j.teacher_score for j in judgements],
        "n_words": sample.n_words.tolist(),
        "n_tokens": sample.n_tokens.tolist(),
        "orig_parsed": sample.parsed.tolist(),
        "orig_teacher_score": sample.teacher_score.tolist(),
    }
    for i, c in enumerate(CRITERIA):
        rows[c] = [s[i] for s in scores]
        rows[f"orig_{c}"] = [None if pd.isna(v) else int(v) for v in sample[c]]
    ids = {k: meta[k] for k in ("pretrain_words", "seed", "variant", "checkpoint") if k in meta}
    write_table(
        dst,
        "agreement",
        rows,
        make_metadata(
            "agreement",
            judge.cfg.model_dump(mode="json"),
            run_id=run_id,
            teacher=name,
            teacher_identity=judge.identity,
            original_teacher=meta.get("teacher"),
            stories_per_run=n,
            sample_seed=seed,
            **ids,
        ),
    )
    parsed = sum(rows["parsed"])
    log.info("%s: %s: %d stories re-scored, %d parsed", name, run_id, len(sample), parsed)
    return {"run_id": run_id, "stories": len(sample), "parsed": parsed, "output": str(dst)}
