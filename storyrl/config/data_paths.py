"""The data a config points at, checked when the workflow plans: a corpus or evaluation folder
that is missing or of the wrong shape would otherwise pass `snakemake -n` and stop only inside
a job, perhaps hours later in a queue. Only the files' names and small JSON headers are read."""

import json
from pathlib import Path

from storyrl.config.base import ConfigError
from storyrl.config.corpus import CorpusConfig
from storyrl.core.babylm_spec import ZERO_SHOT_DIRS, ZERO_SHOT_VARIANTS

HF_HINT = (
    "a Hugging Face dataset saved with `save_to_disk` (e.g. `datasets.load_dataset("
    "'nilq/babylm-100M').save_to_disk(DIR)`), or Parquet file(s) with a `text` column"
)


def _hf_problem(path: Path, split: str) -> str | None:
    if path.is_file():
        return None if path.suffix == ".parquet" else f"not a Parquet file; give {HF_HINT}"
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            return "its dataset_dict.json is unreadable (no `splits` list)"
        if split not in splits:
            return f"the saved DatasetDict has no split '{split}' (has {', '.join(splits)}); set `split`"
        return None
    if (path / "state.json").is_file() or next(path.rglob("*.parquet"), None) is not None:
        return None
    return f"no dataset_dict.json, state.json or Parquet file; give {HF_HINT}"


def _babylm_problem(path: Path) -> str | None:
    if not path.is_dir():
        return "not a folder"
    if next(path.glob("*.train"), None) is not None:
        return None
    if any(d.is_dir() and next(d.glob("*.train"), None) for d in path.glob("train_*")):
        return None
    return (
        "no *.train files here nor in a train_*/ folder (the official BabyLM layout: "
        "train_100M/ or train_10M/, or the folder holding one of them)"
    )


def corpus_problem(cfg: CorpusConfig) -> str | None:
    """Why the corpus at `cfg.path` cannot be read as `cfg.format`, or None."""
    if cfg.format == "demo":
        return None
    path = Path(cfg.path)
    if not path.exists():
        return "no such file or folder"
    if cfg.format == "hf":
        return _hf_problem(path, cfg.split)
    if cfg.format == "babylm":
        return _babylm_problem(path)
    if path.is_dir() and next((p for p in path.rglob("*") if p.is_file()), None) is None:
        return "a folder without files"
    return None


def eval_data_problem(data_path: str, tasks) -> str | None:
    """Why `data_path` is not an `evaluation_data/` folder with the folders of `tasks` (both
    variants: fast sets on every checkpoint, full sets on the full-set models), or None."""
    root = Path(data_path)
    if not root.is_dir():
        return "no such folder"
    missing = [
        f"{variant}/{ZERO_SHOT_DIRS[task][key]}"
        for key, variant in ZERO_SHOT_VARIANTS.items()
        for task in tasks
        if not (root / variant / ZERO_SHOT_DIRS[task][key]).is_dir()
    ]
    if missing:
        return (
            f"lacks {', '.join(missing)} (the official evaluation_data/ layout; drop a task "
            "from zero_shot.tasks to leave it out)"
        )
    return None


def check_data_paths(cfg, source: str = "config", skip_corpora=()) -> None:
    """Raise one ConfigError naming every corpus and evaluation path of `cfg` (a Config) that a
    job could not read. `skip_corpora`: corpora whose subset is already built (their source is
    no longer read)."""
    lines = []
    for name, corpus in cfg.corpora.items():
        if name in skip_corpora:
            continue
        if why := corpus_problem(corpus):
            lines.append(f"  corpora.{name}.path: '{corpus.path}' ({corpus.format}): {why}")
    if cfg.zero_shot.data_path is not None:
        if why := eval_data_problem(cfg.zero_shot.data_path, cfg.zero_shot.tasks):
            lines.append(f"  zero_shot.data_path: '{cfg.zero_shot.data_path}': {why}")
    if lines:
        raise ConfigError(f"invalid config in {source}:\n" + "\n".join(lines))
