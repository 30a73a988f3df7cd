"""Rows of the `rollouts` and `steps` tables from one scored batch of stories.

The RL loops write both per step; the story evaluation writes rollouts rows (step 0) too.
"""

from dataclasses import dataclass

import numpy as np

from storyrl.core.schemas import SCHEMAS
from storyrl.core.units import count_words


@dataclass
class ScoredBatch:
    """One batch of stories and what the scorer said of them."""

    prompts: list[str]
    texts: list[str]
    """The continuations (stories) sampled from the prompts."""
    judgements: list
    """The scorer's judgements (`.reply`, `.scores`, `.parsed`, `.teacher_score`)."""
    rewards: dict
    """Arrays `teacher_score`, `length_bonus`, `reward`, one value per story."""
    n_tokens: list[int]
    """Response tokens per story."""

    @property
    def replies(self) -> list[str]:
        return [j.reply for j in self.judgements]


def rollout_rows(
    run_id: str, step: int, budget_words: int, batch: ScoredBatch, per_story: dict | None = None
) -> list[dict]:
    """One row per story; `per_story` (PPO only) holds its `logprob_sum` and `kl`."""
    rows = []
    for i, (p, c, j) in enumerate(zip(batch.prompts, batch.texts, batch.judgements)):
        scores = tuple(j.scores) if j.scores is not None else (None, None, None)
        rewards = batch.rewards
        rows.append(
            {
                "run_id": run_id,
                "step": step,
                "sample": i,
                "budget_words": budget_words,
                "prompt": p,
                "continuation": c,
                "teacher_reply": j.reply,
                "readability": scores[0],
                "coherence": scores[1],
                "creativity": scores[2],
                "parsed": bool(j.parsed),
                "well_formed": bool(getattr(j, "well_formed", j.parsed)),
                "teacher_score": float(rewards["teacher_score"][i]),
                "length_bonus": float(rewards["length_bonus"][i]),
                "reward": float(rewards["reward"][i]),
                "n_tokens": int(batch.n_tokens[i]),
                "n_words": count_words(c),
                "logprob_sum": float(per_story["logprob_sum"][i]) if per_story else None,
                "kl": float(per_story["kl"][i]) if per_story else None,
            }
        )
    return rows


def step_row(run_id: str, step: int, ledger, batch: ScoredBatch, stats: dict, times) -> dict:
    """The step's row: the ledger after it, reward statistics, the update's `stats` (columns
    it does not give are NaN) and the (sample, score, update) seconds."""
    r = {k: np.asarray(v, dtype=float) for k, v in batch.rewards.items()}
    judgements = batch.judgements
    row = {name: float("nan") for name in SCHEMAS["steps"].names}
    row.update({k: v for k, v in stats.items() if k in row})
    row.update(
        {
            "run_id": run_id,
            "step": step,
            "budget_words": ledger.used,
            "stories": ledger.stories,
            "generated_words": ledger.generated_words,
            "skipped_batches": getattr(ledger, "skipped_batches", 0),
            "teacher_score_mean": r["teacher_score"].mean(),
            "teacher_score_std": r["teacher_score"].std(ddof=1),
            "length_bonus_mean": r["length_bonus"].mean(),
            "length_bonus_std": r["length_bonus"].std(ddof=1),
            "reward_mean": r["reward"].mean(),
            "reward_std": r["reward"].std(ddof=1),
            "parsed_share": float(np.mean([bool(j.parsed) for j in judgements])),
            # Replies that scored the default 0.5 (teacher.on_failure: default lets training go on).
            "teacher_failed_calls": sum(bool(getattr(j, "failed_call", False)) for j in judgements),
            "teacher_unparsed": sum(
                not j.parsed and not getattr(j, "failed_call", False) for j in judgements
            ),
            "teacher_malformed": sum(
                not getattr(j, "well_formed", j.parsed) and not getattr(j, "failed_call", False)
                for j in judgements
            ),
            "response_tokens_mean": float(np.mean(batch.n_tokens)),
            "response_words_mean": float(np.mean([count_words(t) for t in batch.texts])),
            "time_sample_s": times[0],
            "time_score_s": times[1],
            "time_update_s": times[2],
        }
    )
    return row
