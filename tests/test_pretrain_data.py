"""The authors' data handling (FACTS "Student pretraining") against their own procedure written
with `datasets`: empty rows kept with their EOS, blocks cut per 1,000 rows with each group's tail
dropped, tokens per word on the first 10,000 rows without EOS; and the paper config's words to
steps on a BabyLM-format corpus."""

import json
import math
import shutil

import datasets
import numpy as np
import pytest
from transformers import AutoTokenizer

from storyrl.config import CorpusConfig, TokenizerConfig, TrainingConfig
from storyrl.corpus import build_subset
from storyrl.pretrain import Blocks, plan_run
from storyrl.tokenizer import train_tokenizer
from storyrl.tokens import encode_corpus
from storyrl.units import count_words

BLOCK = 64
AUTHORS = {"empty_rows": "keep", "group_rows": 1000, "ratio_rows": 10_000}


@pytest.fixture(scope="module")
def corpus(demo_raw, tmp_path_factory):
    """The demo corpus (BabyLM layout) with empty lines in it, as the real files have."""
    root = tmp_path_factory.mktemp("babylm") / "train_demo"
    root.mkdir()
    for f in sorted((demo_raw).rglob("*.train")):
        lines = f.read_text().splitlines()
        for i in range(0, len(lines), 37):
            lines.insert(i, "")
        (root / f.name).write_text("\n".join(lines) + "\n")
    return root


def _prepare(corpus, out, **stream):
    cfg = CorpusConfig(format="babylm", path=str(corpus), **stream)
    stats = build_subset(cfg, corpus, out / "subset.parquet", out / "stats.json")
    if not (out.parent / "tokenizer").exists():
        train_tokenizer(
            TokenizerConfig(vocab_size=500), out / "subset.parquet", out.parent / "tokenizer"
        )
    meta = encode_corpus(
        out / "subset.parquet",
        out.parent / "tokenizer",
        out / "tokens.bin",
        out / "tokens.json",
        group_rows=cfg.group_rows,
        ratio_rows=cfg.ratio_rows,
    )
    tokens = np.fromfile(out / "tokens.bin", dtype=meta["dtype"])
    return stats, meta, Blocks(tokens, BLOCK, meta["group_tokens"])


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    return {
        name: _prepare(corpus, root / name, **kw)
        for name, kw in (("ours", {}), ("authors", AUTHORS))
    } | {"tokenizer": root / "tokenizer"}


def _authors_pipeline(corpus, tokenizer_dir):
    """The authors' steps, in `datasets` as their script ran them."""
    rows = [line for f in sorted(corpus.glob("*.train")) for line in f.read_text().split("\n")[:-1]]
    ds = datasets.Dataset.from_dict({"text": rows}).shuffle(seed=42)
    ds = ds.select(range(int(0.9 * len(ds))))
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sample = list(ds.select(range(10_000))["text"])
    ratio = sum(len(ids) for ids in tok(sample, add_special_tokens=False)["input_ids"]) / sum(
        count_words(t) for t in sample
    )

    def tokenize(batch):
        ids = tok(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [x + [tok.eos_token_id] for x in ids]}

    def group_texts(batch):
        joined = [t for ids in batch["input_ids"] for t in ids]
        n = len(joined) // BLOCK * BLOCK
        return {"input_ids": [joined[i : i + BLOCK] for i in range(0, n, BLOCK)]}

    ds = ds.map(tokenize, batched=True, batch_size=1000, remove_columns=["text"])
    blocks = list(ds.map(group_texts, batched=True, batch_size=1000)["input_ids"])
    return rows, ratio, blocks


def test_authors_setting_gives_the_authors_blocks_and_ratio(corpus, prepared):
    stats, meta, blocks = prepared["authors"]
    rows, ratio, ref = _authors_pipeline(corpus, prepared["tokenizer"])
    assert stats["rows_kept"] == stats["rows_selected"] == int(0.9 * len(rows))  # empty rows stay
    assert meta["tokens_per_word"] == pytest.approx(ratio, rel=1e-12)
    assert len(blocks) == len(ref)
    ours = np.stack([blocks[i]["input_ids"].numpy() for i in range(len(blocks))])
    assert (ours == np.array(ref)).all()


def test_our_default_stream_differs_from_the_authors_by_more_than_a_tenth_of_a_percent(prepared):
    """Why the paper config needs the setting: the words-to-steps ratio moves every milestone."""
    _, ours, _ = prepared["ours"]
    _, authors, _ = prepared["authors"]
    assert ours["tokens_per_word"] / authors["tokens_per_word"] - 1 > 0.001
    t = TrainingConfig(batch_size=8, epochs=1)
    words = [20_000, 50_000, 90_000]
    a = plan_run(len(prepared["authors"][2]), BLOCK, authors["tokens_per_word"], t, words)
    o = plan_run(len(prepared["ours"][2]), BLOCK, ours["tokens_per_word"], t, words)
    assert all(abs(o.milestone_steps[w] / a.milestone_steps[w] - 1) > 0.001 for w in words)
    assert all(
        a.milestone_steps[w] == math.ceil(math.ceil(w * authors["tokens_per_word"]) / (8 * BLOCK))
        for w in words
    )


def test_tokens_command_takes_the_corpus_section(prepared, tmp_path):
    """The `tokens` rule passes the corpus section: the CLI applies its grouping and ratio."""
    import subprocess
    import sys

    sub = tmp_path / "subset.parquet"
    shutil.copy(prepared["tokenizer"].parent / "authors" / "subset.parquet", sub)
    section = CorpusConfig(format="demo", **AUTHORS).model_dump_json()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "storyrl.cli",
            "tokens",
            "--subset",
            str(sub),
            "--tokenizer",
            str(prepared["tokenizer"]),
            "--output",
            str(tmp_path / "t.bin"),
            "--meta",
            str(tmp_path / "t.json"),
            "--section",
            section,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    meta = json.loads((tmp_path / "t.json").read_text())
    assert meta["group_tokens"] == prepared["authors"][1]["group_tokens"]
    assert meta["tokens_per_word"] == prepared["authors"][1]["tokens_per_word"]
