"""The scorer: the one place where the teacher and the reward are put together, for the RL run
loop, the story evaluation and `storyrl teacher score`; or any factory named `module:callable`.

A scorer is any callable `scorer(prompts, continuations) -> (judgements, rewards)`:
`judgements` are objects with `.reply` (the teacher's raw text), `.scores` (a 3-tuple or None),
`.parsed` and `.teacher_score` (in [0, 1]); `rewards` is a dict of arrays `teacher_score`,
`length_bonus` and `reward` (what the update uses). A TeacherScorer also names its teacher
(`identity`, written into the metadata of what it scores) and holds it open until `close()`.
"""

import importlib
from typing import Protocol


class Scorer(Protocol):
    def __call__(self, prompts: list[str], continuations: list[str]) -> tuple[list, dict]: ...


class TeacherScorer:
    """The teacher's judgements and the rewards computed from them; use it as a context manager
    or call `close()` (a teacher may hold a cache, a client or a server)."""

    def __init__(self, teacher, reward_cfg, max_new_tokens: int):
        self.teacher, self.reward_cfg, self.max_new_tokens = teacher, reward_cfg, max_new_tokens

    def __call__(self, prompts, continuations):
        from storyrl.stories.reward import compute_rewards

        judgements = self.teacher.score(prompts, continuations)
        return judgements, compute_rewards(
            judgements, continuations, self.reward_cfg, self.max_new_tokens
        )

    @property
    def identity(self) -> dict:
        return self.teacher.identity

    def close(self) -> None:
        self.teacher.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def teacher_identity(scorer) -> dict | None:
    """The teacher behind a scorer, as written into metadata; None for other scorers."""
    return scorer.identity if isinstance(scorer, TeacherScorer) else None


def teacher_scorer(
    teacher_section,
    reward_section,
    max_new_tokens: int,
    seed: int,
    cache_path: str | None = None,
) -> TeacherScorer:
    """The TeacherScorer of the teacher and reward sections (dicts, or TeacherConfig and
    RewardConfig); the teacher's seed is the RL seed, as in the paper."""
    from storyrl.stories.teacher import RewardConfig, TeacherConfig, make_teacher

    reward_cfg = RewardConfig.model_validate(reward_section)
    teacher = make_teacher(
        TeacherConfig.model_validate(teacher_section),
        seed,
        cache_path,
        weights=tuple(reward_cfg.weights),
    )
    return TeacherScorer(teacher, reward_cfg, max_new_tokens)


def scorer_from_name(name: str) -> Scorer:
    """`package.module:factory` -> factory(), for scorers other than the teacher (tests, toys)."""
    module, _, attr = name.partition(":")
    if not attr:
        raise ValueError(f"--scorer {name!r}: expected 'module:callable'")
    return getattr(importlib.import_module(module), attr)()
