"""Corpus readers on small files the tests write, and the seeded subset."""

import json
import logging

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storyrl.config import CorpusConfig
from storyrl.data.corpus import CorpusError, build_subset, shuffled_indices


def subset(tmp_path, fmt, path, **kw):
    cfg = CorpusConfig(format=fmt, path=str(path), **kw)
    stats = build_subset(
        cfg, path, tmp_path / "out" / "subset.parquet", tmp_path / "out" / "stats.json"
    )
    return pq.read_table(tmp_path / "out" / "subset.parquet").to_pydict(), stats


def write_babylm(folder, lines_per_file=10):
    folder.mkdir(parents=True)
    for src in ("childes", "gutenberg"):
        (folder / f"{src}.train").write_text(
            "\n".join(f"{src} line {i} with five words" for i in range(lines_per_file)) + "\n"
        )


def test_babylm_folder_and_parent(tmp_path):
    write_babylm(tmp_path / "data" / "train_10M")
    rows, stats = subset(tmp_path, "babylm", tmp_path / "data", fraction=1.0)
    assert stats["per_source"] == {
        "childes": {"lines": 10, "words": 60},
        "gutenberg": {"lines": 10, "words": 60},
    }
    assert sorted(rows["text"]) == sorted(
        f"{s} line {i} with five words" for s in ("childes", "gutenberg") for i in range(10)
    )


def test_babylm_parent_with_two_training_folders_is_ambiguous(tmp_path):
    write_babylm(tmp_path / "data" / "train_10M")
    write_babylm(tmp_path / "data" / "train_100M")
    with pytest.raises(CorpusError, match="train_100M, train_10M"):
        subset(tmp_path, "babylm", tmp_path / "data")


def test_fraction_and_seed_select_the_datasets_shuffle(tmp_path):
    """The subset is what `datasets` shuffle(seed).select(first 90%) gives, as in the paper."""
    folder = tmp_path / "txt"
    folder.mkdir()
    lines = [f"document number {i}" for i in range(200)]
    (folder / "a.txt").write_text("\n".join(lines) + "\n")
    rows, stats = subset(tmp_path, "text", folder, fraction=0.9, seed=42)
    ref = datasets.Dataset.from_dict({"text": lines}).shuffle(seed=42).select(range(180))
    assert rows["text"] == ref["text"]
    assert list(shuffled_indices(200, 42)[:5]) == ref._indices.column(0).to_pylist()[:5]
    assert stats["rows_total"] == 200 and stats["rows_kept"] == 180


def test_bad_utf8_lines_are_skipped_counted_and_named(tmp_path, caplog):
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "bad.txt").write_bytes(b"good line one\n\xff\xfe broken\nstill good\n\xc3\x28 x\n")
    with caplog.at_level(logging.WARNING):
        rows, stats = subset(tmp_path, "text", folder, fraction=1.0)
    assert sorted(rows["text"]) == ["good line one", "still good"]
    assert stats["skipped_non_utf8"] == {str(folder / "bad.txt"): 2}
    assert "bad.txt: skipped 2 line(s) that are not valid UTF-8 (first at line 2)" in caplog.text


def test_empty_lines_are_dropped_after_selection(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("a b\n\n   \nc d e\n")
    rows, stats = subset(tmp_path, "text", path, fraction=1.0)
    assert sorted(rows["text"]) == ["a b", "c d e"] and stats["words"] == 5


def test_empty_folder_missing_path_and_empty_corpus_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no text files"):
        subset(tmp_path, "text", tmp_path / "empty")
    with pytest.raises(CorpusError, match="no \\*.train files"):
        subset(tmp_path, "babylm", tmp_path / "empty")
    with pytest.raises(CorpusError, match="does not exist: .*nowhere"):
        subset(tmp_path, "text", tmp_path / "nowhere")
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(CorpusError, match="blank.txt: the corpus is empty"):
        subset(tmp_path, "text", tmp_path / "blank.txt")


def test_hf_saved_dataset_with_splits(tmp_path):
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["one two", "three four five", ""]}),
            "validation": datasets.Dataset.from_dict({"text": ["not this"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    rows, stats = subset(tmp_path, "hf", tmp_path / "ds", fraction=1.0)
    assert sorted(rows["text"]) == ["one two", "three four five"]
    assert stats["rows_total"] == 3 and stats["words"] == 5
    with pytest.raises(CorpusError, match="no split 'test'"):
        subset(tmp_path, "hf", tmp_path / "ds", split="test")


def test_hf_parquet_files_and_missing_text_column(tmp_path):
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"text": ["a b c", "d e"]}), tmp_path / "pq" / "train-0.parquet")
    rows, stats = subset(tmp_path, "hf", tmp_path / "pq", fraction=1.0)
    assert stats["per_source"] == {"train-0": {"lines": 2, "words": 5}}
    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "wrong.parquet")
    with pytest.raises(CorpusError, match="wrong.parquet: no 'text' column"):
        subset(tmp_path, "hf", tmp_path / "wrong.parquet")


def test_stats_file_is_json_with_per_source_words(tmp_path):
    write_babylm(tmp_path / "train_100M", lines_per_file=20)
    subset(tmp_path, "babylm", tmp_path / "train_100M", fraction=0.5, seed=1)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rows_selected"] == 20
    assert sum(s["lines"] for s in stats["per_source"].values()) == 20
