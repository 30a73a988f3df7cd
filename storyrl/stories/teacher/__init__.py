"""The teacher: rates a student's story on readability, coherence and creativity (0-3 each).

    teacher = make_teacher(cfg.teacher, seed=42, cache_path="results/rl/<run>/teacher_cache.sqlite")
    judgements = teacher.score(prompts, continuations)

Backends: `vllm` (offline engine, the paper's setup), `openai` (any OpenAI-compatible server),
`hf` (transformers locally), `heuristic` (offline proxy, no LLM). Heavy libraries are imported
only by the backend that needs them.
"""

from storyrl.config import RewardConfig, TeacherConfig
from storyrl.stories.rubric import load_rubric
from storyrl.stories.teacher.cache import ScoreCache
from storyrl.stories.teacher.core import Judgement, Teacher, TeacherFailure

__all__ = [
    "make_teacher",
    "Teacher",
    "Judgement",
    "TeacherFailure",
    "TeacherConfig",
    "RewardConfig",
]


def make_teacher(
    cfg: TeacherConfig,
    seed: int,
    cache_path: str | None = None,
    weights=(1.0, 1.0, 1.0),
    cache_timeout_s: float = 10.0,
) -> Teacher:
    """Build the configured backend. `seed` is the teacher's sampling seed (paper: the RL
    seed); `weights` only shape Judgement.teacher_score (the reward reweights from the scores);
    `cache_path`: this job's own score cache (None: uncached); a cache locked for longer than
    `cache_timeout_s` is given up (logged) and scoring goes on uncached."""
    rubric = load_rubric(cfg.template, cfg.join, cfg.template_sha256)
    if cfg.backend == "heuristic":
        from storyrl.stories.teacher.heuristic import HeuristicBackend

        backend = HeuristicBackend(cfg.heuristic.strictness)
    elif cfg.backend == "openai":
        from storyrl.stories.teacher.openai_backend import OpenAIBackend

        backend = OpenAIBackend(cfg, rubric, seed)
    elif cfg.backend == "hf":
        from storyrl.stories.teacher.hf_backend import HFBackend

        backend = HFBackend(cfg, rubric, seed)
    elif cfg.backend == "vllm":
        from storyrl.stories.teacher.vllm_backend import VLLMBackend

        backend = VLLMBackend(cfg, rubric, seed)
    else:  # pragma: no cover - the config's Literal rules this out
        raise ValueError(f"unknown teacher backend {cfg.backend!r}")
    cache = ScoreCache(cache_path, cache_timeout_s) if cache_path else None
    return Teacher(backend, rubric, cfg, cache, weights)
