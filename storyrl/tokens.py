"""The subset tokenized once into one flat binary token stream, with its tokens-per-word ratio.

Documents (rows) are joined with the EOS token. The stream is stored as raw uint16 (uint32 for
vocabularies over 65,535) so training reads blocks through a memory map without re-tokenizing;
the block length is the model's context and is chosen at training time.
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


def encode_corpus(subset: str | Path, tokenizer_dir: str | Path, out_bin: str | Path,
                  out_meta: str | Path, batch_size: int = 10_000) -> dict:
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    dtype = np.uint16 if len(tok) <= np.iinfo(np.uint16).max + 1 else np.uint32
    eos = tok.eos_token_id
    pf = pq.ParquetFile(subset)
    n_tokens = n_words = n_docs = 0
    with atomic_path(out_bin) as tmp, open(tmp, "wb") as f:
        bar = tqdm(total=pf.metadata.num_rows, desc="tokenize", unit="doc", mininterval=5)
        for batch in pf.iter_batches(columns=["text"], batch_size=batch_size):
            texts = batch.column(0).to_pylist()
            ids = tok(texts, add_special_tokens=False)["input_ids"]
            flat = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=dtype)
            f.write(flat.tobytes())
            n_tokens += flat.size
            n_words += sum(count_words(t) for t in texts)
            n_docs += len(texts)
            bar.update(len(texts))
        bar.close()
    meta = {
        "dtype": np.dtype(dtype).name, "n_tokens": n_tokens, "n_words": n_words,
        "n_docs": n_docs, "vocab_size": len(tok), "eos_id": eos,
        # Includes the EOS separators, so words seen = tokens seen / this ratio exactly on average.
        "tokens_per_word": n_tokens / max(n_words, 1),
    }
    write_text(out_meta, json.dumps(meta, indent=2) + "\n")
    log.info("%d docs, %d words -> %d tokens (%.3f tokens/word)", n_docs, n_words, n_tokens,
             meta["tokens_per_word"])
    return meta


def load_tokens(bin_path: str | Path, meta_path: str | Path) -> tuple[np.ndarray, dict]:
    meta = json.loads(Path(meta_path).read_text())
    return np.memmap(bin_path, dtype=meta["dtype"], mode="r"), meta
