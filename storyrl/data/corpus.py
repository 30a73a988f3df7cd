"""Corpus readers and the seeded subset that pretraining uses.

Three layouts are read: the official BabyLM folder (six `*.train` files), a Hugging Face
dataset on disk (`save_to_disk`, or Parquet with a `text` column, as the paper's
`nilq/babylm-100M`), and plain text files. Each yields (source, line) pairs; the subset is the
paper's: shuffle all rows with a seed (the `datasets` shuffle the authors used), keep the first
`fraction`. Empty rows are dropped after the selection (so the selection itself is the paper's),
or kept as the authors did (`empty_rows: keep`: each then adds its EOS to the token stream).
"""

import io
import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storyrl.config import CorpusConfig
from storyrl.core.atomic import atomic_path, write_text
from storyrl.core.units import count_words

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """The corpus is missing, empty or unreadable; the message names the path."""


WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def read_lines(path: Path, source: str, skipped: Counter) -> Iterator[tuple[str, str]]:
    """Lines of one text file; lines that are not UTF-8 are skipped, counted and warned about.
    A UTF-16/32 file or NUL bytes stop with an error: decoded as UTF-8 they are text full of
    NULs that would pass every check and train on garbage."""
    first_bad = None
    with open(path, "rb") as f:
        head = f.read(4)
        for bom, name in WIDE_BOMS.items():
            if head.startswith(bom):
                raise CorpusError(
                    f"{path}: the file is {name} (byte order mark); convert it to "
                    f"UTF-8, e.g. iconv -f {name} -t UTF-8"
                )
        f.seek(3 if head.startswith(b"\xef\xbb\xbf") else 0)  # a UTF-8 BOM is not text
        # Lines end at `\n`, `\r\n` or a lone `\r` (Python's universal newlines), so an old
        # Mac file is one row per line too. Latin-1 maps each byte to one character and back,
        # so every line is still decoded as UTF-8 on its own, and a bad one skipped alone.
        lines = io.TextIOWrapper(f, encoding="latin-1", newline=None)
        for lineno, text in enumerate(lines, 1):
            raw = text.encode("latin-1")
            if b"\x00" in raw:
                raise CorpusError(
                    f"{path}: line {lineno} holds NUL bytes: the file is binary or "
                    "UTF-16/UTF-32 without a byte order mark; convert it to UTF-8"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                skipped[str(path)] += 1
                first_bad = first_bad or lineno
                continue
            yield source, line.rstrip("\n")
    if skipped[str(path)]:
        log.warning(
            "%s: skipped %d line(s) that are not valid UTF-8 (first at line %d)",
            path,
            skipped[str(path)],
            first_bad,
        )


def babylm_files(path: Path) -> list[Path]:
    """The `*.train` files of an official BabyLM training folder, or of its one train_* child."""
    files = sorted(path.glob("*.train"))
    if files:
        return files
    subs = sorted(d for d in path.glob("train_*") if d.is_dir() and any(d.glob("*.train")))
    if len(subs) > 1:
        names = ", ".join(d.name for d in subs)
        raise CorpusError(f"{path}: several training folders ({names}); set corpus path to one")
    if not subs:
        raise CorpusError(f"{path}: no *.train files here nor in a train_*/ folder")
    return sorted(subs[0].glob("*.train"))


def text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def hf_rows(path: Path, split: str) -> Iterator[tuple[str, str]]:
    """Rows of the `text` column of a saved dataset, or of Parquet file(s)."""
    parquet = [path] if path.suffix == ".parquet" else sorted(path.rglob("*.parquet"))
    if path.is_dir() and not parquet:
        import datasets

        try:
            ds = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as err:
            raise CorpusError(f"{path}: not a dataset saved with save_to_disk ({err})") from None
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise CorpusError(f"{path}: no split '{split}' (has {', '.join(ds)})")
            ds = ds[split]
        if "text" not in ds.column_names:
            raise CorpusError(f"{path}: no 'text' column (has {', '.join(ds.column_names)})")
        for batch in ds.select_columns(["text"]).iter(batch_size=10_000):
            yield from (("hf", t or "") for t in batch["text"])
        return
    for file in parquet:
        if "text" not in pq.read_schema(file).names:
            raise CorpusError(f"{file}: no 'text' column")
        for batch in pq.ParquetFile(file).iter_batches(columns=["text"], batch_size=10_000):
            yield from ((file.stem, t or "") for t in batch.column(0).to_pylist())


def iter_rows(cfg: CorpusConfig, path: Path, skipped: Counter) -> Iterator[tuple[str, str]]:
    if not path.exists():
        raise CorpusError(f"corpus path does not exist: {path}")
    if cfg.format == "hf":
        yield from hf_rows(path, cfg.split)
        return
    files = babylm_files(path) if cfg.format in ("babylm", "demo") else text_files(path)
    if not files:
        raise CorpusError(f"{path}: no text files")
    for file in files:
        yield from read_lines(file, file.stem, skipped)


def shuffled_indices(n: int, seed: int) -> np.ndarray:
    """The permutation `datasets.Dataset.shuffle(seed=seed)` applies, which the paper used."""
    return np.random.default_rng(seed).permutation(n)


def build_subset(
    cfg: CorpusConfig, path: str | Path, out_parquet: str | Path, out_stats: str | Path
) -> dict:
    """Read the corpus at `path`, write the seeded subset (text, source) and its word counts."""
    path = Path(path)
    skipped: Counter = Counter()
    sources, texts = [], []
    for source, text in iter_rows(cfg, path, skipped):
        sources.append(source)
        texts.append(text)
    if not any(t.strip() for t in texts):
        raise CorpusError(f"{path}: the corpus is empty (no non-empty line)")

    table = pa.table({"text": texts, "source": sources})
    n_total = table.num_rows
    keep = int(cfg.fraction * n_total)
    table = table.take(shuffled_indices(n_total, cfg.seed)[:keep])
    nonempty = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(table.column("text"))), 0)
    if not pc.any(nonempty).as_py():
        # Checked after the cut: a tiny corpus would otherwise pass here and fail in
        # pretraining on an empty token file.
        raise CorpusError(
            f"{path}: no non-empty line left in the subset (fraction {cfg.fraction} "
            f"of {n_total} rows keeps {keep}); use a larger corpus or fraction"
        )
    if cfg.empty_rows == "drop":
        table = table.filter(nonempty)

    words, lines = Counter(), Counter()
    for text, source in zip(table.column("text").to_pylist(), table.column("source").to_pylist()):
        words[source] += count_words(text)
        lines[source] += 1
    stats = {
        "path": str(path),
        "format": cfg.format,
        "fraction": cfg.fraction,
        "seed": cfg.seed,
        "rows_total": n_total,
        "rows_selected": keep,
        "rows_kept": table.num_rows,
        "words": sum(words.values()),
        "per_source": {s: {"lines": lines[s], "words": words[s]} for s in sorted(words)},
        "skipped_non_utf8": dict(skipped),
    }
    with atomic_path(out_parquet) as tmp:
        pq.write_table(table, tmp)
    write_text(out_stats, json.dumps(stats, indent=2) + "\n")
    log.info(
        "subset of %s: %d of %d rows, %d words (%s)",
        path,
        table.num_rows,
        n_total,
        stats["words"],
        ", ".join(f"{s} {w}" for s, w in sorted(words.items())),
    )
    return stats
