"""Corpus faults: a corpus too small for its `fraction`, and a corpus in
UTF-16 or with NUL bytes, stop at `subset` with the path named, not in pretraining."""

import json

import pytest

from storyrl.cli import main
from storyrl.config import CorpusConfig
from storyrl.data.corpus import CorpusError, build_subset


def run_subset(tmp_path, path, **kw):
    cfg = CorpusConfig(format="text", path=str(path), **kw)
    return build_subset(
        cfg, path, tmp_path / "out" / "subset.parquet", tmp_path / "out" / "stats.json"
    )


def test_a_one_line_corpus_is_empty_after_the_fraction_cut(tmp_path, capsys):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("once upon a time there was a fox\n")
    with pytest.raises(CorpusError, match=r"tiny\.txt.*no non-empty line.*fraction 0\.9"):
        run_subset(tmp_path, corpus, fraction=0.9)
    assert not (tmp_path / "out" / "subset.parquet").exists()
    rc = main(
        [
            "subset",
            "--section",
            json.dumps({"format": "text", "path": str(corpus)}),
            "--path",
            str(corpus),
            "--output",
            str(tmp_path / "o.parquet"),
            "--stats",
            str(tmp_path / "o.json"),
        ]
    )
    assert rc == 2 and str(corpus) in capsys.readouterr().err
    assert run_subset(tmp_path, corpus, fraction=1.0)["rows_kept"] == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_corpus_is_named_not_read_as_nul_text(tmp_path, encoding):
    corpus = tmp_path / "wide.txt"
    corpus.write_text(
        "\n".join(f"line {i} of a story" for i in range(50)) + "\n", encoding=encoding
    )
    with pytest.raises(CorpusError, match=r"wide\.txt.*(UTF-16|UTF-32|NUL)"):
        run_subset(tmp_path, corpus, fraction=1.0)


def test_nul_bytes_in_a_utf8_corpus_are_named(tmp_path):
    corpus = tmp_path / "nul.txt"
    corpus.write_bytes(b"a good line\nbad\x00line\n" + b"more text\n" * 10)
    with pytest.raises(CorpusError, match=r"nul\.txt.*line 2.*NUL"):
        run_subset(tmp_path, corpus, fraction=1.0)


DOCS = ["once upon a time there was a fox", "the fox was happy", "", "the end of the story"]


def test_cr_only_line_ends_keep_the_documents_apart(tmp_path):
    """Old Mac files end lines with a lone `\\r`: each is a row (a document) as with `\\n` and
    `\\r\\n`, so the token stream has an EOS after each, not one row for the whole file."""
    import numpy as np
    import pyarrow.parquet as pq

    from storyrl.config import TokenizerConfig
    from storyrl.data.tokenizer import train_tokenizer
    from storyrl.data.tokens import encode_corpus

    streams = {}
    for name, end in [("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")]:
        corpus = tmp_path / f"{name}.txt"
        corpus.write_bytes(end.join(DOCS).encode() + end.encode())
        out = tmp_path / name
        cfg = CorpusConfig(format="text", path=str(corpus), fraction=1.0)
        stats = build_subset(cfg, corpus, out / "subset.parquet", out / "stats.json")
        assert stats["rows_total"] == len(DOCS), (name, stats)
        rows = pq.read_table(out / "subset.parquet").column("text").to_pylist()
        assert sorted(rows) == sorted(d for d in DOCS if d), name
        if name == "lf":
            tok = tmp_path / "tokenizer"
            train_tokenizer(TokenizerConfig(vocab_size=300), out / "subset.parquet", tok)
        meta = encode_corpus(out / "subset.parquet", tok, out / "tokens.bin", out / "tokens.json")
        streams[name] = np.fromfile(out / "tokens.bin", dtype=meta["dtype"])
        assert meta["n_docs"] == 3 and (streams[name] == meta["eos_id"]).sum() == 3, name
    assert (streams["cr"] == streams["lf"]).all() and (streams["crlf"] == streams["lf"]).all()


def test_a_lone_cr_ends_a_line_and_bad_utf8_is_still_skipped_per_line(tmp_path):
    corpus = tmp_path / "mac.txt"
    corpus.write_bytes(b"\xef\xbb\xbfgood one\rbad \xff line\rlast one\r\nmixed\rends\n")
    stats = run_subset(tmp_path, corpus, fraction=1.0)
    assert (stats["rows_total"], stats["skipped_non_utf8"]) == (4, {str(corpus): 1}), stats
