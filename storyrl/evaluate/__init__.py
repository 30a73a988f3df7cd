"""Evaluation: BabyLM zero-shot tasks with the official 2025 pipeline's semantics.

`tasks` (the registry as data), `scorer` (one batched log-prob scorer), `results` (official
numbers, report, predictions, tidy rows), `zero_shot` (entry points and CLI handlers).
"""

# storyrl.config imports ZeroShotConfig from here; loading it first keeps the import order the
# same whichever module a caller imports first.
import storyrl.config  # noqa: E402,F401
