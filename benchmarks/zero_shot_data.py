"""The zero-shot benchmark's model and data (benchmarks/zero_shot.py): a random GPT-2 with a
tokenizer trained on the demo corpus, and real BLiMP read from a folder or a git directory."""

import json
from pathlib import Path


def build_checkpoint(
    folder: Path, corpus: Path | None, layers: int, heads: int, dim: int, vocab: int, positions: int
):
    """A random GPT-2 of this shape in `folder`; the tokenizer is trained on `corpus` (the demo
    corpus folder) unless `folder` already holds one."""
    from storyrl.testing import tiny_gpt2

    if corpus is not None:
        _demo_tokenizer(folder, corpus, vocab)
    # The model keeps the full vocabulary size even if the small corpus gives fewer merges.
    shape = dict(n_positions=positions, n_embd=dim, n_layer=layers, n_head=heads)
    tiny_gpt2(vocab, seed=0, **shape).save_pretrained(folder)
    return folder


def _demo_tokenizer(folder: Path, corpus: Path, vocab: int):
    from tokenizers import processors

    from storyrl.testing import byte_bpe, fast_tokenizer

    tok = byte_bpe(vocab, files=sorted(corpus.glob("*.train")))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast_tokenizer(tok, folder)


def read_blimp(src: Path) -> dict[str, list[str]]:
    """The 67 paradigm files of BLiMP (name -> JSON lines): from a folder of `*.jsonl` (or one
    with `data/`), or from a git directory of github.com/alexwarstadt/blimp (`HEAD:data/`)."""
    import subprocess

    src = Path(src)
    folder = src / "data" if (src / "data").is_dir() else src
    files = sorted(folder.glob("*.jsonl"))
    if files:
        return {f.stem: f.read_text(encoding="utf-8").splitlines() for f in files}
    git = ["git", "--git-dir", str(src)]
    try:
        names = subprocess.run(
            git + ["ls-tree", "--name-only", "HEAD", "data/"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    except subprocess.CalledProcessError as err:
        raise ValueError(
            f"--blimp {src}: neither *.jsonl files nor a git directory ({err.stderr.strip()})"
        ) from None
    names = [n for n in names if n.endswith(".jsonl")]
    if not names:
        raise ValueError(f"--blimp {src}: no data/*.jsonl at HEAD")
    return {
        Path(n).stem: subprocess.run(
            git + ["show", f"HEAD:{n}"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        for n in names
    }


def real_blimp(src: Path, tmp: Path, per_file: int, vocab: int) -> tuple[Path, Path]:
    """The first `per_file` pairs of every paradigm file as an items folder, and a checkpoint
    folder holding our BPE tokenizer (`storyrl.data.tokenizer`, vocabulary `vocab`) trained on all
    sentences of all files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storyrl.config import TokenizerConfig
    from storyrl.data.tokenizer import train_tokenizer

    files = read_blimp(src)
    data = tmp / "blimp"
    data.mkdir()
    texts = []
    for name, lines in files.items():
        lines = [ln for ln in lines if ln.strip()]
        (data / f"{name}.jsonl").write_text("\n".join(lines[:per_file]) + "\n")
        for ln in lines:
            raw = json.loads(ln)
            texts += [raw["sentence_good"], raw["sentence_bad"]]
    pq.write_table(pa.table({"text": texts}), tmp / "blimp_text.parquet")
    ckpt = tmp / "blimp_small"
    tok = train_tokenizer(TokenizerConfig(vocab_size=vocab), tmp / "blimp_text.parquet", ckpt)
    print(
        f"real BLiMP: {len(files)} files, first {per_file} pairs of each; tokenizer trained on "
        f"{len(texts)} sentences: {len(tok)} tokens",
        flush=True,
    )
    return data, ckpt
