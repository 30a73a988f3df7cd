"""Byte-level BPE trained on a corpus subset, saved as a transformers tokenizer folder."""

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
from tokenizers import ByteLevelBPETokenizer
from transformers import PreTrainedTokenizerFast

from storyrl.config import ConfigError, TokenizerConfig
from storyrl.core import units
from storyrl.core.atomic import atomic_path
from storyrl.core.schemas import config_hash

log = logging.getLogger(__name__)

TOKENIZER_INFO = "storyrl_tokenizer.json"
"""Written into the tokenizer folder: the hash of the tokenizer section it was trained with."""


def _texts(subset: Path, share: float, line_ends: bool, batch_size: int = 10_000):
    """The first int(share x rows) rows; with `line_ends`, as the lines of a file holding one
    row per line: `tokenizers` reads a file's lines up to and including each newline."""
    pf = pq.ParquetFile(subset)
    left = int(share * pf.metadata.num_rows)
    row = 0
    for batch in pf.iter_batches(columns=["text"], batch_size=batch_size):
        rows = batch.column(0).to_pylist()[:left]
        left -= len(rows)
        out = []
        for text in rows:
            lines = [line + "\n" for line in text.split("\n")] if line_ends else [text]
            for line in lines:
                if len(line) > units.PIECE_CHARS:
                    # The trainer counts pre-tokens; the pieces hold the same ones (units.pieces).
                    parts = units.pieces(line)
                    log.warning(units.long_row_message(subset, row, line, len(parts)))
                    out += parts
                else:
                    out.append(line)
            row += 1
        yield out
        if left <= 0:
            return


def train_tokenizer(cfg: TokenizerConfig, subset: str | Path, out_dir: str | Path):
    """Train on the `text` column of the subset Parquet; no BOS is added when encoding."""
    rows = pq.ParquetFile(subset).metadata.num_rows
    if int(cfg.train_fraction * rows) == 0:
        raise ConfigError(
            f"tokenizer.train_fraction: {cfg.train_fraction} of the {rows} rows of {subset} "
            "is no row to train the tokenizer on; raise it"
        )
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _texts(Path(subset), cfg.train_fraction, cfg.line_ends),
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
        # What the token stream records (storyrl.pretrain.schedule.stream_settings).
        (Path(tmp) / TOKENIZER_INFO).write_text(
            json.dumps({"config_hash": config_hash(cfg.model_dump(mode="json"))}) + "\n"
        )
    log.info("tokenizer: %d tokens -> %s", len(tok), out_dir)
    return tok
