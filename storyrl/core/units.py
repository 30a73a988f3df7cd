"""Word counts, the short labels ("20M", "500K") that name checkpoints in paths, and long texts
cut between words."""

import re
from decimal import Decimal

_SUFFIX = {"": 1, "K": 1_000, "M": 1_000_000, "B": 1_000_000_000}
_LABEL = re.compile(r"^(\d+(?:\.\d+)?)([KMB]?)$")


def count_words(text: str) -> int:
    """Words as the paper counts them everywhere: a whitespace split."""
    return len(text.split())


def parse_words(value: int | str) -> int:
    """`20M` -> 20_000_000; plain integers pass through."""
    if isinstance(value, bool):
        raise ValueError(f"not a word count: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"word count must be >= 0, got {value}")
        return value
    m = _LABEL.match(str(value).strip().upper().replace("_", ""))
    if not m:
        raise ValueError(f"not a word count: {value!r} (use an integer or e.g. 500K, 20M, 1B)")
    # Decimal: in binary floats 32.2 * 1000 is 32200.000000000004, not a whole number.
    n = Decimal(m.group(1)) * _SUFFIX[m.group(2)]
    if n != n.to_integral_value():
        raise ValueError(f"word count must be a whole number: {value!r}")
    return int(n)


def words_label(n: int) -> str:
    """The inverse of parse_words, used in paths: 20_000_000 -> '20M', 1_500 -> '1500'. A
    billion is '1000M', as BabyLM names the revision (chck_1000M)."""
    for suffix in ("M", "K"):
        unit = _SUFFIX[suffix]
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def checkpoint_name(words: int) -> str:
    """The folder of a pretraining milestone: `ckpt-20M`. The workflow's paths, pretraining's
    exports and its published links all name milestones with this."""
    return f"ckpt-{words_label(words)}"


PIECE_CHARS = 1_000_000
"""Corpus rows longer than this are tokenized in pieces of about this many characters. A 48 MB row
(a document without line breaks) took 5.3 GB in the tokenizer trainer and 7.4 GB here whole."""


def pieces(text: str) -> list[str]:
    """`text` cut before spaces that stand alone between two non-spaces: byte-level BPE's
    pre-tokenizer starts a new pre-token (` word`) there anyway, so the pieces encode to exactly
    the tokens of the whole text, and train a tokenizer on the same word counts. A text without
    such a space in reach stays longer than PIECE_CHARS."""
    limit = PIECE_CHARS
    if len(text) <= limit:
        return [text]
    out, start = [], 0
    while len(text) - start > limit:
        cut = _cut_before(text, start + 1, start + limit)
        if cut is None:
            cut = _cut_after(text, start + limit)
        if cut is None:
            break
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


def _lone_space(text: str, i: int) -> bool:
    return (
        text[i] == " "
        and 0 < i < len(text) - 1
        and not text[i - 1].isspace()
        and not text[i + 1].isspace()
    )


def _cut_before(text: str, lo: int, hi: int) -> int | None:
    i = text.rfind(" ", lo, hi)
    while i >= lo and not _lone_space(text, i):
        i = text.rfind(" ", lo, i)
    return i if i >= lo else None


def _cut_after(text: str, lo: int) -> int | None:
    i = text.find(" ", lo)
    while i != -1 and not _lone_space(text, i):
        i = text.find(" ", i + 1)
    return None if i == -1 else i


def long_row_message(path, row: int, text: str, n_pieces: int) -> str:
    return (
        f"{path}: row {row} is one line of {len(text):,} characters; tokenized in {n_pieces} "
        "pieces (cut between words: the tokens are those of the whole line)"
    )
