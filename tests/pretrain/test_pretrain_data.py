"""The authors' data handling (FACTS "Student pretraining") against their own procedure written
with `datasets` and `tokenizers` (their src/pre_training/training.py): the tokenizer trained from
a text file of the subset's first 90% of rows, empty rows kept with their EOS, each 1,000-row
group's trailing EOS popped before it is cut into blocks (its tail dropped), tokens per word on
the first 10,000 rows of the subset shuffled again with seed 42, without EOS; and the paper
config's words to steps on a BabyLM-format corpus."""

import json
import math
import shutil

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from tokenizers import ByteLevelBPETokenizer
from transformers import AutoTokenizer, GPT2TokenizerFast

from storyrl.config import CorpusConfig, TokenizerConfig, TrainingConfig
from storyrl.core.units import count_words
from storyrl.data.corpus import build_subset
from storyrl.data.tokenizer import train_tokenizer
from storyrl.data.tokens import encode_corpus
from storyrl.pretrain.train import Blocks, plan_run

BLOCK = 64
AUTHORS = {
    "empty_rows": "keep",
    "group_rows": 1000,
    "ratio_rows": 10_000,
    "ratio_sample": "reshuffled",
    "pop_group_eos": True,
}
AUTHORS_TOKENIZER = {"train_fraction": 0.9, "line_ends": True}
VOCAB = 500


@pytest.fixture(scope="module")
def corpus(demo_raw, tmp_path_factory):
    """The demo corpus (BabyLM layout) with empty lines in it, as the real files have, and some
    lines ending in a space (a tokenizer trained from a file of lines sees those as other
    pre-tokens than one trained on the rows)."""
    root = tmp_path_factory.mktemp("babylm") / "train_demo"
    root.mkdir()
    for f in sorted((demo_raw).rglob("*.train")):
        lines = [ln + " " if i % 11 == 5 else ln for i, ln in enumerate(f.read_text().splitlines())]
        for i in range(0, len(lines), 37):
            lines.insert(i, "")
        (root / f.name).write_text("\n".join(lines) + "\n")
    return root


def _prepare(corpus, out, tokenizer: dict, **stream):
    cfg = CorpusConfig(format="babylm", path=str(corpus), **stream)
    stats = build_subset(cfg, corpus, out / "subset.parquet", out / "stats.json")
    train_tokenizer(
        TokenizerConfig(vocab_size=VOCAB, **tokenizer), out / "subset.parquet", out / "tokenizer"
    )
    meta = encode_corpus(
        out / "subset.parquet",
        out / "tokenizer",
        out / "tokens.bin",
        out / "tokens.json",
        group_rows=cfg.group_rows,
        ratio_rows=cfg.ratio_rows,
        ratio_seed=cfg.seed if cfg.ratio_sample == "reshuffled" else None,
        pop_group_eos=cfg.pop_group_eos,
    )
    tokens = np.fromfile(out / "tokens.bin", dtype=meta["dtype"])
    return stats, meta, Blocks(tokens, BLOCK, meta["group_tokens"])


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    variants = (("ours", {}, {}), ("authors", AUTHORS, AUTHORS_TOKENIZER))
    return {name: _prepare(corpus, root / name, tok, **kw) for name, kw, tok in variants} | {
        "tokenizer": root / "authors" / "tokenizer"
    }


@pytest.fixture(scope="module")
def authors(corpus, tmp_path_factory):
    """The authors' steps, as their script ran them: `datasets` for the subset, the samples and
    the blocks; `tokenizers` trained from a text file for the tokenizer."""
    work = tmp_path_factory.mktemp("authors")
    rows = [line for f in sorted(corpus.glob("*.train")) for line in f.read_text().split("\n")[:-1]]
    ds = datasets.Dataset.from_dict({"text": rows}).shuffle(seed=42)
    ds = ds.select(range(int(0.9 * len(ds))))

    # The tokenizer: the subset's first 90% of rows, one per line in a file.
    head = ds.select(range(int(len(ds) * 0.9)))["text"]
    (work / "for_tokenizer.txt").write_text("".join(t + "\n" for t in head), encoding="utf8")
    bpe = ByteLevelBPETokenizer()
    bpe.train(
        files=[str(work / "for_tokenizer.txt")],
        vocab_size=VOCAB,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe.save_model(str(work))
    # transformers 5 takes the files as `vocab`/`merges` (the authors' 4.53: `vocab_file`/...).
    tok = GPT2TokenizerFast(
        vocab=str(work / "vocab.json"),
        merges=str(work / "merges.txt"),
        pad_token="<pad>",
        eos_token="</s>",
        bos_token="<s>",
        unk_token="<unk>",
    )
    assert len(tok) == VOCAB

    # Tokens per word: the subset shuffled a second time, its first 10,000 rows, one at a time.
    sample = ds.shuffle(seed=42).select(range(min(10_000, len(ds))))["text"]
    ratio = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in sample) / sum(
        len(t.split()) for t in sample
    )

    def tokenize(batch):
        return tok(batch["text"], add_special_tokens=False)

    def group(batch):
        joined = [t for ids in batch["input_ids"] for t in (*ids, tok.eos_token_id)]
        if joined and joined[-1] == tok.eos_token_id:
            joined.pop()
        n = len(joined) // BLOCK * BLOCK
        return {"input_ids": [joined[i : i + BLOCK] for i in range(0, n, BLOCK)]}

    ds = ds.map(tokenize, batched=True, remove_columns=["text"])
    ds = ds.map(group, batched=True, batch_size=1000, remove_columns=["attention_mask"])
    return {"rows": rows, "tokenizer": bpe, "ratio": ratio, "blocks": list(ds["input_ids"])}


def test_authors_setting_gives_the_authors_blocks_and_ratio(prepared, authors):
    stats, meta, blocks = prepared["authors"]
    assert stats["rows_kept"] == stats["rows_selected"] == int(0.9 * len(authors["rows"]))
    assert meta["tokens_per_word"] == pytest.approx(authors["ratio"], rel=1e-12)
    assert len(blocks) == len(authors["blocks"])
    ours = np.stack([blocks[i]["input_ids"].numpy() for i in range(len(blocks))])
    assert (ours == np.array(authors["blocks"])).all()


def _bpe(tokenizer_dir):
    model = json.loads((tokenizer_dir / "tokenizer.json").read_text())["model"]
    return model["vocab"], [
        tuple(m) if isinstance(m, list) else tuple(m.split()) for m in model["merges"]
    ]


def test_the_tokenizer_is_the_authors(prepared, authors):
    """Trained on the subset's first 90% of rows as lines of a text file: the same vocabulary
    and merges, in order."""
    ref = json.loads(authors["tokenizer"]._tokenizer.to_str())["model"]
    vocab, merges = _bpe(prepared["tokenizer"])
    assert vocab == ref["vocab"]
    assert merges == [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in ref["merges"]]
    # Our default (every row, no line ends) is another tokenizer on this corpus.
    assert _bpe(prepared["tokenizer"].parent.parent / "ours" / "tokenizer")[1] != merges


@pytest.mark.parametrize("share", [0.9, 0.5])
def test_tokenizer_train_fraction_takes_the_first_rows(corpus, tmp_path, share):
    """`train_fraction` alone: the same tokenizer as one trained on the subset's first rows."""
    cfg = CorpusConfig(format="babylm", path=str(corpus))
    build_subset(cfg, corpus, tmp_path / "subset.parquet", tmp_path / "stats.json")
    train_tokenizer(
        TokenizerConfig(vocab_size=VOCAB, train_fraction=share),
        tmp_path / "subset.parquet",
        tmp_path / "tok",
    )
    rows = pq.read_table(tmp_path / "subset.parquet").column("text").to_pylist()
    ref = ByteLevelBPETokenizer()
    ref.train_from_iterator(
        rows[: int(share * len(rows))],
        vocab_size=VOCAB,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    assert _bpe(tmp_path / "tok")[0] == ref.get_vocab()


def test_a_train_fraction_of_no_row_is_a_clear_error(tmp_path):
    import pyarrow as pa

    from storyrl.config import ConfigError

    pq.write_table(pa.table({"text": ["one two", "three"]}), tmp_path / "subset.parquet")
    cfg = TokenizerConfig(vocab_size=VOCAB, train_fraction=0.4)
    with pytest.raises(
        ConfigError, match=r"tokenizer.train_fraction: 0.4 of the 2 rows of .*subset"
    ):
        train_tokenizer(cfg, tmp_path / "subset.parquet", tmp_path / "tok")
    assert not (tmp_path / "tok").exists()


def test_the_ratio_sample_is_the_reshuffled_subset(prepared, authors):
    """`ratio_sample: reshuffled` measures the rows `Dataset.shuffle(seed)` puts first in the
    already cut subset, not the subset's own first rows."""
    _, meta, _ = prepared["authors"]
    sub = pq.read_table(prepared["tokenizer"].parent / "subset.parquet").column("text").to_pylist()
    order = datasets.Dataset.from_dict({"i": list(range(len(sub)))}).shuffle(seed=42)["i"]
    tok = AutoTokenizer.from_pretrained(prepared["tokenizer"])

    def ratio(texts):
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        return sum(map(len, ids)) / sum(count_words(t) for t in texts)

    assert meta["tokens_per_word_sample"] == pytest.approx(
        ratio([sub[i] for i in order[:10_000]]), rel=1e-12
    )
    assert meta["tokens_per_word_sample"] != pytest.approx(ratio(sub[:10_000]), rel=1e-6)


def test_each_groups_trailing_eos_is_popped(prepared):
    """`pop_group_eos`: a group of 1,000 rows is its rows' tokens each followed by EOS, less the
    last EOS; the stream holds exactly what the blocks are cut from."""
    _, meta, _ = prepared["authors"]
    sub = pq.read_table(prepared["tokenizer"].parent / "subset.parquet").column("text").to_pylist()
    tok = AutoTokenizer.from_pretrained(prepared["tokenizer"])
    eos = tok.eos_token_id
    ids = tok(sub, add_special_tokens=False)["input_ids"]
    groups = [
        [t for doc in ids[i : i + 1000] for t in (*doc, eos)][:-1] for i in range(0, len(ids), 1000)
    ]
    assert meta["group_tokens"] == [len(g) for g in groups]
    tokens = np.fromfile(prepared["tokenizer"].parent / "tokens.bin", dtype=meta["dtype"])
    assert tokens.tolist() == [t for g in groups for t in g]


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
    shutil.copy(prepared["tokenizer"].parent / "subset.parquet", sub)
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


def test_the_paper_corpus_is_the_2023_release_saved_to_disk(tmp_path):
    """The authors loaded `nilq/babylm-100M` (the 2023 release) with `load_dataset` and took
    its train split: the paper config reads that dataset saved with `save_to_disk`, and its
    subset is the rows their shuffle and cut keep, in their order, empty rows included."""
    from helpers import ROOT
    from storyrl.config import load

    paper = load(ROOT / "config" / "paper.yaml")
    corpus = paper.corpora["babylm"]
    assert (corpus.format, corpus.split) == ("hf", "train")
    header = (ROOT / "config" / "paper.yaml").read_text().split("\ncorpora:")[0]
    assert "nilq/babylm-100M" in header and "save_to_disk" in header

    rng = np.random.default_rng(0)
    words = "the a cat dog sat ran on in mat park".split()
    text = [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(5_000)]
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": text}),
            "validation": datasets.Dataset.from_dict({"text": ["held out"] * 50}),
            "test": datasets.Dataset.from_dict({"text": ["held out too"] * 50}),
        }
    )
    dd.save_to_disk(str(tmp_path / "babylm-100M"))
    cfg = corpus.model_copy(update={"path": str(tmp_path / "babylm-100M")})
    build_subset(cfg, cfg.path, tmp_path / "subset.parquet", tmp_path / "stats.json")
    ours = pq.read_table(tmp_path / "subset.parquet").column("text").to_pylist()
    ref = dd["train"].shuffle(seed=42)
    assert ours == ref.select(range(int(0.9 * len(ref))))["text"]
