"""Scorers for the run loop: the teacher plus the reward, or any factory named `module:callable`."""

import importlib


def teacher_scorer(teacher_section: dict, reward_section: dict, max_new_tokens: int, seed: int,
                   cache_path: str | None = None):
    """`scorer(prompts, continuations) -> (judgements, rewards)` from the teacher and reward
    sections (storyrl.teacher); the teacher's seed is the RL seed, as in the paper. The teacher
    itself is `scorer.teacher`."""
    from storyrl.reward import compute_rewards
    from storyrl.teacher import RewardConfig, TeacherConfig, make_teacher

    reward_cfg = RewardConfig.model_validate(reward_section)
    teacher = make_teacher(TeacherConfig.model_validate(teacher_section), seed, cache_path,
                           weights=tuple(reward_cfg.weights))

    def scorer(prompts, continuations):
        judgements = teacher.score(prompts, continuations)
        return judgements, compute_rewards(judgements, continuations, reward_cfg, max_new_tokens)

    scorer.teacher = teacher  # its identity goes into the metadata of what is scored
    return scorer


def scorer_from_name(name: str):
    """`package.module:factory` -> factory(), for scorers other than the teacher (tests, toys)."""
    module, _, attr = name.partition(":")
    if not attr:
        raise ValueError(f"--scorer {name!r}: expected 'module:callable'")
    return getattr(importlib.import_module(module), attr)()
