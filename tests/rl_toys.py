"""Tiny real components for the RL tests: a word-level tokenizer, a GPT-2 checkpoint folder, and a
deterministic scorer whose reward is the share of one chosen word in the story."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
WORDS = (
    "once upon a time in land far away there lived king queen moon star tale magical "
    "long let me tell you the and of"
).split()


def toy_tokenizer(words=WORDS) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: the special tokens, then `words` in their order."""
    vocab = {w: i for i, w in enumerate(SPECIALS + list(words))}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        mask_token="<mask>",
    )


def put_foreign_tokenizer(folder, extra: int = 0) -> None:
    """Overwrite the tokenizer of a checkpoint folder with one "from another corpus": the same
    words in another order (the same vocabulary size when `extra` is 0), plus `extra` new
    words."""
    toy_tokenizer([*reversed(WORDS), *(f"new{i}" for i in range(extra))]).save_pretrained(folder)


def make_checkpoint(path, seed: int = 0, n_positions: int = 64):
    tok = toy_tokenizer()
    vocab = tok.get_vocab()
    import torch

    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=n_positions,
        vocab_size=len(vocab),
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
    )
    model = GPT2LMHeadModel(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


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
