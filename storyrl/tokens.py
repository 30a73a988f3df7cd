"""The subset tokenized once into one flat binary token stream, with its tokens-per-word ratio.

Documents (rows) are joined with the EOS token. The stream is stored as raw uint16 (uint32 for
vocabularies over 65,535) so training reads blocks through a memory map without re-tokenizing;
the block length is the model's context and is chosen at training time. With `group_rows` the
metadata also lists the tokens of each group of rows, so that blocks can be cut per group as the
authors' `datasets.map(group_texts, batched=True)` did.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm
from transformers import AutoTokenizer

from storyrl.atomic import atomic_path, write_text
from storyrl.units import count_words

log = logging.getLogger(__name__)

PIECE_CHARS = 1_000_000
"""Rows longer than this are tokenized in pieces of about this many characters. A 48 MB row
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


def warn_long_row(path, row: int, text: str, n_pieces: int) -> None:
    log.warning(
        "%s: row %d is one line of %d characters; tokenized in %d pieces (cut between words, "
        "the tokens are those of the whole line)",
        path,
        row,
        len(text),
        n_pieces,
    )


def _encode(tok, texts: list[str], path, first_row: int, dtype) -> list:
    """Token ids of each text; a text over PIECE_CHARS is encoded piece by piece, so only one
    piece's encoding is held at a time."""
    ids = []
    short = [i for i, t in enumerate(texts) if len(t) <= PIECE_CHARS]
    enc = {}
    if short:
        got = tok([texts[i] for i in short], add_special_tokens=False)["input_ids"]
        enc = dict(zip(short, got))
    for i, t in enumerate(texts):
        if i in enc:
            ids.append(enc[i])
            continue
        parts = pieces(t)
        warn_long_row(path, first_row + i, t, len(parts))
        ids.append(
            np.concatenate(
                [np.asarray(tok(p, add_special_tokens=False)["input_ids"], dtype) for p in parts]
            )
        )
    return ids


def encode_corpus(
    subset: str | Path,
    tokenizer_dir: str | Path,
    out_bin: str | Path,
    out_meta: str | Path,
    group_rows: int | None = None,
    ratio_rows: int | None = None,
    batch_size: int = 10_000,
) -> dict:
    """Write the stream and its metadata; `group_rows`, `ratio_rows` as in CorpusConfig."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    dtype = np.uint16 if len(tok) <= np.iinfo(np.uint16).max + 1 else np.uint32
    eos = tok.eos_token_id
    pf = pq.ParquetFile(subset)
    n_tokens = n_words = n_docs = sample_tokens = sample_words = 0
    doc_lengths = []
    with atomic_path(out_bin) as tmp, open(tmp, "wb") as f:
        bar = tqdm(total=pf.metadata.num_rows, desc="tokenize", unit="doc", mininterval=5)
        for batch in pf.iter_batches(columns=["text"], batch_size=batch_size):
            texts = batch.column(0).to_pylist()
            ids = _encode(tok, texts, subset, n_docs, dtype)
            flat = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=dtype)
            f.write(flat.tobytes())
            doc_lengths.append(np.fromiter((len(d) + 1 for d in ids), dtype=np.int64))
            if ratio_rows and n_docs < ratio_rows:
                k = ratio_rows - n_docs
                sample_tokens += sum(len(d) for d in ids[:k])  # no EOS, as the authors measured
                sample_words += sum(count_words(t) for t in texts[:k])
            n_tokens += flat.size
            n_words += sum(count_words(t) for t in texts)
            n_docs += len(texts)
            bar.update(len(texts))
        bar.close()
    stream_ratio = n_tokens / max(n_words, 1)
    meta = {
        "dtype": np.dtype(dtype).name,
        "n_tokens": n_tokens,
        "n_words": n_words,
        "n_docs": n_docs,
        "vocab_size": len(tok),
        "eos_id": eos,
        # Over the stream with its EOS separators: words seen = tokens seen / this, on average.
        "tokens_per_word_stream": stream_ratio,
        "ratio_rows": ratio_rows,
        # Over the first rows without EOS (the authors' way), if asked for.
        "tokens_per_word_sample": sample_tokens / max(sample_words, 1) if ratio_rows else None,
        "group_rows": group_rows,
        "group_tokens": None,
    }
    # The ratio that turns milestone words into tokens (and so into steps).
    meta["tokens_per_word"] = meta["tokens_per_word_sample"] if ratio_rows else stream_ratio
    if group_rows and n_docs:
        lengths = np.concatenate(doc_lengths)
        meta["group_tokens"] = np.add.reduceat(lengths, np.arange(0, n_docs, group_rows)).tolist()
    write_text(out_meta, json.dumps(meta, indent=2) + "\n")
    log.info(
        "%d docs, %d words -> %d tokens (%.4f tokens/word with EOS; %.4f used for milestones)",
        n_docs,
        n_words,
        n_tokens,
        stream_ratio,
        meta["tokens_per_word"],
    )
    return meta


def load_tokens(bin_path: str | Path, meta_path: str | Path) -> tuple[np.ndarray, dict]:
    meta = json.loads(Path(meta_path).read_text())
    return np.memmap(bin_path, dtype=meta["dtype"], mode="r"), meta
