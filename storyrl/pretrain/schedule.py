"""The pretraining run in optimizer steps, from the token stream's metadata alone (no torch):
the run's length, and the step at which each word milestone is saved. Pretraining plans with
it, and so does the workflow at planning time, where the stream's metadata already exists."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from storyrl.config import ConfigError, TrainingConfig
from storyrl.core.units import words_label


def count_blocks(n_tokens: int, block: int, group_tokens: list[int] | None = None) -> int:
    """Blocks of `block` tokens, cut per group of rows when `group_tokens` is given (each
    part's tail shorter than a block is dropped), as pretrain.Blocks cuts them."""
    return sum(g // block for g in (group_tokens or [n_tokens]))


@dataclass(frozen=True)
class Plan:
    """The whole run in optimizer steps, fixed before the first step so the schedule spans it."""

    tokens_per_step: int
    tokens_per_word: float
    total_steps: int
    milestone_steps: dict[int, int]  # milestone words -> step at which it is saved

    def words_at(self, step: int) -> int:
        return round(step * self.tokens_per_step / self.tokens_per_word)


def plan_run(
    n_blocks: int,
    block: int,
    tokens_per_word: float,
    training: TrainingConfig,
    milestones: list[int],
) -> Plan:
    tokens_per_step = training.batch_size * block
    total = math.floor(training.epochs * n_blocks / training.batch_size)
    if total < 1:
        raise ConfigError(
            f"pretrain.training: {n_blocks} blocks of {block} tokens make less "
            f"than one batch of {training.batch_size}"
        )
    total_words = total * tokens_per_step / tokens_per_word
    steps = {}
    for w in milestones:
        # The authors' rule: the first step whose tokens reach ceil(words x ratio).
        need = math.ceil(w * tokens_per_word)
        step = -(-need // tokens_per_step)
        if step > total:
            raise ConfigError(
                f"pretrain.milestones: {words_label(w)} words is past the end of the run "
                f"({total_words:,.0f} words = {training.epochs} epochs); lower it or add epochs"
            )
        if step in steps.values():
            raise ConfigError(
                f"pretrain.milestones: {words_label(w)} falls on the same step as "
                f"an earlier milestone ({tokens_per_step} tokens per step)"
            )
        steps[w] = step
    return Plan(tokens_per_step, tokens_per_word, total, steps)


def plan_from_meta(meta_path, block: int, training: TrainingConfig, milestones: list[int]) -> Plan:
    """plan_run for the token stream whose metadata (tokens.json) is at `meta_path`."""
    meta = json.loads(Path(meta_path).read_text())
    n_blocks = count_blocks(meta["n_tokens"], block, meta.get("group_tokens"))
    return plan_run(n_blocks, block, meta["tokens_per_word"], training, milestones)


def stream_is_current(meta_path, corpus_cfg, tokenizer_cfg) -> bool:
    """Whether the token stream at `meta_path` was made with these corpus and tokenizer
    sections (its `made_with`), so that the workflow will not rebuild it for a changed section.
    False for a stream that records nothing (made before this was recorded)."""
    from storyrl.core.schemas import config_hash

    try:
        made = json.loads(Path(meta_path).read_text()).get("made_with") or {}
    except (OSError, ValueError, AttributeError):
        return False
    want = {
        "corpus": config_hash(corpus_cfg.model_dump(mode="json")),
        "tokenizer": config_hash(tokenizer_cfg.model_dump(mode="json")),
    }
    return made == want
