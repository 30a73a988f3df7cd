"""Byte-level BPE trained on a corpus subset, saved as a transformers tokenizer folder."""

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import ByteLevelBPETokenizer
from transformers import PreTrainedTokenizerFast

from storyrl.atomic import atomic_path
from storyrl.config import TokenizerConfig
from storyrl.schemas import config_hash

log = logging.getLogger(__name__)

TOKENIZER_INFO = "storyrl_tokenizer.json"
"""Written into the tokenizer folder: the hash of the tokenizer section it was trained with."""


def _texts(subset: Path, batch_size: int = 10_000):
    for batch in pq.ParquetFile(subset).iter_batches(columns=["text"], batch_size=batch_size):
        yield batch.column(0).to_pylist()


def train_tokenizer(cfg: TokenizerConfig, subset: str | Path, out_dir: str | Path):
    """Train on the `text` column of the subset Parquet; no BOS is added when encoding."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _texts(Path(subset)),
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens,
        show_progress=False,
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=cfg.bos,
        eos_token=cfg.eos,
        pad_token=cfg.pad,
        unk_token=cfg.unk,
        mask_token=cfg.mask,
    )
    with atomic_path(out_dir, is_dir=True) as tmp:
        tok.save_pretrained(tmp)
        # What the token stream records (storyrl.pretrain_plan.stream_settings).
        (Path(tmp) / TOKENIZER_INFO).write_text(
            json.dumps({"config_hash": config_hash(cfg.model_dump(mode="json"))}) + "\n"
        )
    log.info("tokenizer: %d tokens -> %s", len(tok), out_dir)
    return tok
