"""The scalar reward of one story: teacher score plus a length bonus (docs/paper.md, step 4).

    reward = (teacher_score + c * min(words(continuation) / max_new_tokens, 1)) / (1 + c)

The paper: c = 0.4, max_new_tokens = 90, criteria weights 1/1/1, words = whitespace split of the
continuation only (not the prompt). With c = 0 the reward is the teacher score alone.
"""

import numpy as np

from storyrl.config import RewardConfig
from storyrl.core.units import count_words
from storyrl.stories.rubric import weighted_score
from storyrl.stories.teacher.core import Judgement


def compute_rewards(
    judgements: list[Judgement], continuations: list[str], cfg: RewardConfig, max_new_tokens: int
) -> dict[str, np.ndarray]:
    """Per story: `teacher_score` (weighted by cfg.weights, in [0, 1]; 0.5 when the reply did not
    parse), `length_bonus` (the term c * min(words / max_new_tokens, 1) added to it), `reward`, and
    `n_words` (words of the continuation)."""
    if len(judgements) != len(continuations):
        raise ValueError(f"{len(judgements)} judgements but {len(continuations)} continuations")
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be > 0, got {max_new_tokens}")
    c = cfg.length_coef
    # Recomputed from the scores so the reward's weights are cfg.weights, whatever weights the
    # teacher was built with.
    teacher = np.array(
        [weighted_score(j.scores if j.parsed else None, cfg.weights) for j in judgements],
        dtype=np.float64,
    )
    n_words = np.array([count_words(t) for t in continuations], dtype=np.int64)
    # A student story of max_new_tokens tokens has at most that many words, so the paper's bonus
    # never passes c; a story from elsewhere (`teacher score`) is capped there, as that intends.
    bonus = c * np.minimum(n_words / max_new_tokens, 1.0)
    return {
        "teacher_score": teacher,
        "length_bonus": bonus,
        "reward": (teacher + bonus) / (1 + c),
        "n_words": n_words,
    }
