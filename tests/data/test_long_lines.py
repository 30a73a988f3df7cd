"""One very long line (a document without line breaks) in the subset. A 48 MB
line took 5.3 GB in the tokenizer trainer and 7.4 GB in `tokens` without a word. It is cut
into pieces at word starts, where byte-level BPE's pre-tokenizer cuts anyway (so the tokens are
those of the whole line), and a warning names the file and row. Memory itself is not measured
here: the pieces' size is lowered so that a 30,000-character line is "long"."""

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from transformers import AutoTokenizer

from storyrl.config import TokenizerConfig
from storyrl.core import units
from storyrl.data.tokenizer import train_tokenizer
from storyrl.data.tokens import encode_corpus


@pytest.fixture
def subset(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat,", "and", "then", "it's", "42", "ran!", "(up)"]
    rows = [" ".join(rng.choice(words, 30)) for _ in range(20)]
    rows[7] = " ".join(rng.choice(words, 6000)) + "  double  spaces\tand tabs"  # the long one
    path = tmp_path / "subset.parquet"
    pq.write_table(pa.table({"text": rows}), path)
    return path, rows


def test_a_long_line_is_encoded_in_pieces_with_a_warning(subset, tmp_path, monkeypatch, caplog):
    path, rows = subset
    monkeypatch.setattr(units, "PIECE_CHARS", 1000)
    caplog.set_level(logging.WARNING)
    train_tokenizer(TokenizerConfig(vocab_size=300), path, tmp_path / "tok")
    encode_corpus(path, tmp_path / "tok", tmp_path / "t.bin", tmp_path / "t.json")
    warned = [r.getMessage() for r in caplog.records if "row 7" in r.getMessage()]
    assert warned and str(path) in warned[0], [r.getMessage() for r in caplog.records]
    # The same tokens as the whole line encoded at once.
    tok = AutoTokenizer.from_pretrained(tmp_path / "tok")
    want = []
    for r in rows:
        want += tok(r, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    got = np.fromfile(tmp_path / "t.bin", dtype=np.uint16).tolist()
    assert got == want
