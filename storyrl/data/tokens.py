"""The subset tokenized once into one flat binary token stream, with its tokens-per-word ratio.

Documents (rows) are joined with the EOS token. The stream is stored as raw uint16 (uint32 for
vocabularies over 65,535) so training reads blocks through a memory map without re-tokenizing;
the block length is the model's context and is chosen at training time. With `group_rows` the
metadata also lists the tokens of each group of rows, so that blocks can be cut per group as the
authors' `datasets.map(group_texts, batched=True)` did; with `pop_group_eos` each group's last EOS
is left out of the stream, as their grouping function popped it.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm
from transformers import AutoTokenizer

from storyrl.core import units
from storyrl.core.atomic import atomic_path, write_text
from storyrl.core.units import count_words, long_row_message, pieces
from storyrl.data.corpus import shuffled_indices

log = logging.getLogger(__name__)


def _encode(tok, texts: list[str], path, first_row: int, dtype) -> list:
    """Token ids of each text; a text over units.PIECE_CHARS is encoded piece by piece, so only one
    piece's encoding is held at a time."""
    ids = []
    short = [i for i, t in enumerate(texts) if len(t) <= units.PIECE_CHARS]
    enc = {}
    if short:
        got = tok([texts[i] for i in short], add_special_tokens=False)["input_ids"]
        enc = dict(zip(short, got))
    for i, t in enumerate(texts):
        if i in enc:
            ids.append(enc[i])
            continue
        parts = pieces(t)
        log.warning(long_row_message(path, first_row + i, t, len(parts)))
        ids.append(
            np.concatenate(
                [np.asarray(tok(p, add_special_tokens=False)["input_ids"], dtype) for p in parts]
            )
        )
    return ids


def _tokenizer_hash(tokenizer_dir) -> str | None:
    from storyrl.data.tokenizer import TOKENIZER_INFO

    f = Path(tokenizer_dir) / TOKENIZER_INFO
    return json.loads(f.read_text()).get("config_hash") if f.exists() else None


def encode_corpus(
    subset: str | Path,
    tokenizer_dir: str | Path,
    out_bin: str | Path,
    out_meta: str | Path,
    group_rows: int | None = None,
    ratio_rows: int | None = None,
    ratio_seed: int | None = None,
    pop_group_eos: bool = False,
    batch_size: int = 10_000,
    corpus_hash: str | None = None,
) -> dict:
    """Write the stream and its metadata; `group_rows`, `ratio_rows`, `pop_group_eos` as in
    CorpusConfig; `ratio_seed`: the ratio's rows are the first `ratio_rows` of the subset
    shuffled with this seed (`ratio_sample: reshuffled`), None: the subset's first rows.
    `corpus_hash` (the corpus section's config hash) and the tokenizer folder's own record go
    into the metadata as `made_with`, so that planning can tell a current stream from a stale
    one (storyrl.pretrain.schedule.stream_is_current)."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    dtype = np.uint16 if len(tok) <= np.iinfo(np.uint16).max + 1 else np.uint32
    eos = tok.eos_token_id
    pf = pq.ParquetFile(subset)
    n_rows = pf.metadata.num_rows
    in_sample = np.zeros(n_rows, dtype=bool)
    if ratio_rows:
        order = np.arange(n_rows) if ratio_seed is None else shuffled_indices(n_rows, ratio_seed)
        in_sample[order[:ratio_rows]] = True
    # Rows whose EOS is dropped: the last of each group (of the stream without groups).
    last_of_group = np.zeros(n_rows, dtype=bool)
    if pop_group_eos and n_rows:
        size = group_rows or n_rows
        last_of_group[size - 1 :: size] = True
        last_of_group[-1] = True
    n_tokens = n_words = n_docs = sample_tokens = sample_words = 0
    doc_lengths = []
    with atomic_path(out_bin) as tmp, open(tmp, "wb") as f:
        bar = tqdm(total=n_rows, desc="tokenize", unit="doc", mininterval=5)
        for batch in pf.iter_batches(columns=["text"], batch_size=batch_size):
            texts = batch.column(0).to_pylist()
            ids = _encode(tok, texts, subset, n_docs, dtype)
            ends = ~last_of_group[n_docs : n_docs + len(texts)]
            flat = np.fromiter(
                (t for doc, end in zip(ids, ends) for t in (*doc, eos)[: len(doc) + end]),
                dtype=dtype,
            )
            f.write(flat.tobytes())
            doc_lengths.append(np.fromiter((len(d) for d in ids), dtype=np.int64) + ends)
            if ratio_rows:
                picked = np.flatnonzero(in_sample[n_docs : n_docs + len(texts)])
                # no EOS, as the authors measured
                sample_tokens += sum(len(ids[i]) for i in picked)
                sample_words += sum(count_words(texts[i]) for i in picked)
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
        "ratio_seed": ratio_seed,
        # Over the first rows without EOS (the authors' way), if asked for.
        "tokens_per_word_sample": sample_tokens / max(sample_words, 1) if ratio_rows else None,
        "group_rows": group_rows,
        "group_tokens": None,
        "group_eos_popped": pop_group_eos,
        "made_with": {"corpus": corpus_hash, "tokenizer": _tokenizer_hash(tokenizer_dir)},
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
