"""Tiny real components for the RL tests: a GPT-2 checkpoint folder (storyrl.testing's), a
foreign tokenizer for it, and a deterministic scorer whose reward is the share of one chosen word
in the story."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storyrl.testing import WORDS, tiny_checkpoint, word_tokenizer


def put_foreign_tokenizer(folder, extra: int = 0) -> None:
    """Overwrite the tokenizer of a checkpoint folder with one "from another corpus": the same
    words in another order (the same vocabulary size when `extra` is 0), plus `extra` new
    words."""
    word_tokenizer([*reversed(WORDS), *(f"new{i}" for i in range(extra))]).save_pretrained(folder)


def make_checkpoint(path, seed: int = 0, n_positions: int = 64):
    """A tiny GPT-2 with the toy tokenizer (storyrl.testing.tiny_checkpoint)."""
    return tiny_checkpoint(path, seed=seed, n_positions=n_positions)


@dataclass(frozen=True)
class ToyJudgement:
    reply: str
    scores: tuple | None
    parsed: bool
    failed_call: bool
    teacher_score: float


class ShareScorer:
    """teacher_score = share of the story's words that are `word`; the reply is always three
    numbers (three words), `0 0 0` for an empty story."""

    def __init__(self, word: str = "moon", max_new_tokens: int = 12):
        self.word, self.max_new_tokens = word, max_new_tokens

    def __call__(self, prompts, continuations):
        judgements, ts, lb = [], [], []
        for c in continuations:
            words = c.split()
            share = words.count(self.word) / len(words) if words else 0.0
            n = round(3 * share)
            judgements.append(ToyJudgement(f"{n} {n} {n}", (n, n, n), True, False, share))
            ts.append(judgements[-1].teacher_score)
            lb.append(0.0 * len(words))
        ts = np.asarray(ts)
        return judgements, {"teacher_score": ts, "length_bonus": np.asarray(lb), "reward": ts}


class HeldScorer(ShareScorer):
    """ShareScorer that, at its first batch, creates the file $STORYRL_TOY_STARTED and waits for
    the file $STORYRL_TOY_GO: a live run held inside its first step, for tests of a second
    process on the same run folder."""

    def __call__(self, prompts, continuations):
        Path(os.environ["STORYRL_TOY_STARTED"]).touch()
        while not Path(os.environ["STORYRL_TOY_GO"]).exists():
            time.sleep(0.05)
        return super().__call__(prompts, continuations)
