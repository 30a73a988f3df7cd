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


def _tokenizer_hash(tokenizer_dir) -> str | None:
    from storyrl.tokenizer import TOKENIZER_INFO

    f = Path(tokenizer_dir) / TOKENIZER_INFO
    return json.loads(f.read_text()).get("config_hash") if f.exists() else None


def encode_corpus(
    subset: str | Path,
    tokenizer_dir: str | Path,
    out_bin: str | Path,
    out_meta: str | Path,
    group_rows: int | None = None,
    ratio_rows: int | None = None,
    batch_size: int = 10_000,
    corpus_hash: str | None = None,
) -> dict:
    """Write the stream and its metadata; `group_rows`, `ratio_rows` as in CorpusConfig.
    `corpus_hash` (the corpus section's config hash) and the tokenizer folder's own record go
    into the metadata as `made_with`, so that planning can tell a current stream from a stale
    one (storyrl.pretrain_plan.stream_is_current)."""
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
            ids = tok(texts, add_special_tokens=False)["input_ids"]
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
