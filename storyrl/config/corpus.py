"""Config sections of the corpus slice and of the tokenizer trained on it."""

from typing import Literal

from pydantic import Field, model_validator

from storyrl.config.base import Section, Words


# --------------------------------------------------------------------------- corpus
class CorpusConfig(Section):
    """A corpus slice: where its text comes from and which subset of it is used."""

    format: Literal["demo", "babylm", "hf", "text"]
    """`demo`: generated synthetic BabyLM-format corpus; `babylm`: the official folder of six
    `*.train` files (`train_100M/` or `train_10M/`, or the parent holding one of them);
    `hf`: a Hugging Face dataset saved with `save_to_disk`, or Parquet file(s), with a `text`
    column; `text`: plain text file(s) or a folder of them, one document per line."""
    path: str | None = None
    """Where the text is (not used by `demo`)."""
    split: str = "train"
    """For `hf` datasets saved as a DatasetDict: the split to use."""
    demo_words: Words = 3_000_000
    """For `demo`: the size of the generated corpus in words."""
    demo_seed: int = 0
    """For `demo`: the generator's seed."""
    fraction: float = Field(0.9, gt=0, le=1)
    """Share of the shuffled lines kept (paper: 0.9)."""
    seed: int = 42
    """Seed of the shuffle that picks the subset (paper: 42)."""
    empty_rows: Literal["drop", "keep"] = "drop"
    """`keep` (the authors'): empty rows of the subset stay, and each adds its EOS to the token
    stream; `drop`: they are removed after the selection (the selection is the same)."""
    group_rows: int | None = Field(None, ge=1)
    """The authors' 1000: rows are joined per group of this many and each group is cut into
    blocks on its own, its tail shorter than a block dropped (`datasets.map(batched=True)` with
    run_clm's `group_texts`). None: one stream, only its final tail dropped."""
    ratio_rows: int | None = Field(None, ge=1)
    """The authors' 10000: tokens per word, which turns milestone words into steps, is measured
    on the first this-many rows of the shuffled subset without special tokens and without EOS.
    None: over the whole stream, EOS included (then words seen = tokens seen / ratio)."""
    ratio_sample: Literal["head", "reshuffled"] = "head"
    """Which `ratio_rows` rows: `head`, the subset's first rows; `reshuffled` (the authors'),
    the first rows of the subset shuffled a second time with `seed` (`Dataset.shuffle` on the
    already cut subset)."""
    pop_group_eos: bool = False
    """The authors' true: each group of `group_rows` rows (the whole stream when None) loses
    its trailing EOS before it is cut into blocks, so groups do not end on a separator."""

    @model_validator(mode="after")
    def _path_needed(self):
        if self.format != "demo" and not self.path:
            raise ValueError(f"format '{self.format}' needs 'path'")
        return self


# --------------------------------------------------------------------------- tokenizer
class TokenizerConfig(Section):
    """Byte-level BPE trained on each corpus subset."""

    vocab_size: int = Field(16_000, ge=300)
    min_frequency: int = Field(2, ge=1)
    bos: str = "<s>"
    pad: str = "<pad>"
    eos: str = "</s>"
    """Joins documents in the token stream; ends every student story."""
    unk: str = "<unk>"
    mask: str = "<mask>"
    train_fraction: float = Field(1.0, gt=0, le=1)
    """Share of the subset's rows the tokenizer is trained on: its first int(share x rows)
    rows in subset order (the authors': 0.9 of the 90% subset)."""
    line_ends: bool = False
    """Train as on a text file of one row per line (the authors wrote the rows to a file for
    `ByteLevelBPETokenizer.train`): every line keeps its newline, which joins trailing
    whitespace into other pre-tokens and so moves merges. False: the rows as they are."""

    @property
    def special_tokens(self) -> list[str]:
        # This order gives the ids 0..4 that the paper's tokenizer has.
        return [self.bos, self.pad, self.eos, self.unk, self.mask]
