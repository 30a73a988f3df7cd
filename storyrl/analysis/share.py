"""A results folder as a Hugging Face dataset: its result files in the same layout, and a dataset
card (README.md) whose YAML header declares one config per table, so that

    datasets.load_dataset("<folder or user/repo>", "rollouts")

reads the RL stories, and `storyrl analysis all --results <folder>` rebuilds every table and
figure with the run's settings (its config, `config.yaml` in the folder). The card declares what
the Hub expects (license, language, task and size categories, each config's files and features)
and holds the provenance: the storyrl version and commit, package versions and each file's
SHA-256; and what each column means (storyrl.core.schema_docs).

    storyrl share --results results --out results/share
    hf upload <user>/<repo> results/share . --repo-type dataset
"""

import json
import logging
import shutil
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from storyrl import __version__
from storyrl.analysis import AnalysisError
from storyrl.analysis.share_files import MARK, copy_file, install, owned, sha256
from storyrl.core import layout
from storyrl.core.redact import portable_config
from storyrl.core.schema_docs import TABLE_DOCS, column_table
from storyrl.core.schemas import SCHEMAS, git_commit, read_metadata, read_table

CONFIGS = {
    "rollouts": ("rollouts", "rollouts", "every story of every RL run, with the teacher's reply"),
    "steps": ("steps", "steps", "one row per RL step"),
    "story_eval": ("story_eval", "rollouts", "stories sampled from each evaluated checkpoint"),
    "eval_scores": ("eval", "eval_scores", "BabyLM scores (zero-shot, GLUE, reading, AoA)"),
    "pretrain_log": ("pretrain_logs", "pretrain_log", "the pretraining logs"),
    "agreement": ("agreement", "agreement", "RL stories re-scored by a further teacher"),
}
"""Dataset config -> (layout input, schema table, what it holds). Every Parquet file the
analysis reads belongs to one config; summary.json files and baselines are copied as files."""

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "tokenizers",
    "vllm",
    "datasets",
    "pyarrow",
    "pandas",
    "numpy",
    "scipy",
    "matplotlib",
    "pydantic",
    "snakemake",
)

log = logging.getLogger(__name__)

SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]
"""The Hub's size categories (rows of all configs together), up to the largest a run makes."""


def share(results, out, config: dict | None = None, baselines=None) -> dict:
    """Write `out` from `results`: a new folder, or a former share folder whose files of
    `share` are updated and whose other contents are kept (storyrl.analysis.share_files), with
    `config` (the run's validated config; default: the one recorded in `results`) as
    `config.yaml`. Returns {config: rows}."""
    results, out = Path(results), Path(out)
    if not results.is_dir():
        raise AnalysisError(f"results folder {results} does not exist")
    if config is None and layout.config_path(results).is_file():
        from storyrl.config import load

        config = load(layout.config_path(results)).model_dump(mode="json")
    # What the card and a reader see of the config: no URL credentials, no absolute paths.
    config = portable_config(config) if config is not None else None
    if out.resolve() == results.resolve():
        raise AnalysisError(f"--out {out}: give a folder other than the results folder")
    mine = owned(out)
    inputs = layout.discover(results)
    files = []  # (relative path, config or "", table or "")
    for name, (field, table, _) in CONFIGS.items():
        for p in getattr(inputs, field):
            if out.resolve() in p.resolve().parents:
                continue  # a former share folder under results/
            read_table(p, table, columns=SCHEMAS[table].names[:1])  # the schema, checked
            files.append((p.relative_to(results), name, table))
    files += [(p.relative_to(results), "", "") for p in inputs.summaries]
    if not any(c for _, c, _ in files):
        raise AnalysisError(f"{results}: no result Parquet files to share")
    base_src = Path(baselines) if baselines else inputs.baselines
    if base_src is not None and not base_src.is_file():
        raise AnalysisError(f"--baselines {base_src}: no such file")

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    src = {rel: results / rel for rel, _, _ in files}
    if base_src is not None:
        rel = Path(f"baselines{base_src.suffix}")
        src[rel] = base_src
        files.append((rel, "", ""))
    for rel, path in src.items():
        copy_file(path, tmp / rel)
    rows = {}
    for rel, name, _ in files:
        if name:
            rows[name] = rows.get(name, 0) + pq.read_metadata(tmp / rel).num_rows
    if config is not None:
        from storyrl.config import record_text

        layout.config_path(tmp).write_text(record_text(config), encoding="utf-8")
    (tmp / "README.md").write_text(card(tmp, files, rows, config), encoding="utf-8")
    install(tmp, out, mine)
    return rows


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def size_category(n: int) -> str:
    return next((name for top, name in SIZE_CATEGORIES if n < top), "n>1B")


def dataset_info(folder: Path, files, rows: dict) -> list[dict]:
    """The card's `dataset_info`, one entry per config as `datasets` writes it: its features
    (from the Parquet schema) and its one split's rows and (uncompressed) bytes."""
    from datasets import Features

    out = []
    for name in CONFIGS:
        paths = [folder / rel for rel, c, _ in files if c == name]
        if not paths:
            continue
        schema = pq.read_schema(paths[0]).remove_metadata()
        metas = [pq.read_metadata(p) for p in paths]
        size = sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups))
        out.append(
            {
                "config_name": name,
                "features": Features.from_arrow_schema(schema)._to_yaml_list(),
                "splits": [{"name": "train", "num_bytes": size, "num_examples": rows[name]}],
                "download_size": sum(p.stat().st_size for p in paths),
                "dataset_size": size,
            }
        )
    return out


def header(rows: dict, config: dict | None = None, info: list | None = None) -> dict:
    """The card's YAML header: what the Hub shows and filters by, one config per table
    present (its files as a glob pattern) and each config's features and size."""
    card = (config or {}).get("share") or {}
    head = {"pretty_name": card.get("pretty_name") or "storyrl results"}
    if card.get("license"):
        head["license"] = card["license"]
    else:
        log.warning(
            "no license for the dataset card: set share.license in the config (e.g. cc-by-4.0; "
            "the stories carry the corpus's and the teacher's terms); the card declares none"
        )
    head |= {
        "language": card.get("language") or ["en"],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(sum(rows.values()))],
        "tags": ["storyrl", "babylm-2025", "reinforcement-learning", "storytelling"],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": "train", "path": layout.PATTERNS[CONFIGS[name][0]]}],
            }
            for name in CONFIGS
            if name in rows
        ],
    }
    if info is not None:
        head["dataset_info"] = info
    return head


def card(folder: Path, files, rows: dict, config: dict | None) -> str:
    ids = []
    stamps = set()
    for rel, name, _ in files:
        meta = read_metadata(folder / rel) if name else {}
        stamps.add((meta.get("storyrl_version", ""), meta.get("git_commit", "")))
        keep = {
            k: v
            for k, v in meta.items()
            if k in ("run_id", "model_id", "pretrain_words", "rl_words", "seed", "algorithm")
        }
        n = pq.read_metadata(folder / rel).num_rows if name else ""
        ids.append(
            f"| `{rel.as_posix()}` | {name} | {n} | "
            f"{', '.join(f'{k}={v}' for k, v in keep.items())} | `{sha256(folder / rel)}` |"
        )
    made_by = ", ".join(sorted(f"{v} ({c})" for v, c in stamps if v)) or "unknown"
    parts = [
        "---",
        yaml.safe_dump(
            header(rows, config, dataset_info(folder, files, rows)), sort_keys=False
        ).strip(),
        "---",
        MARK,
        "",
        "# storyrl results",
        "",
        "Results of a storyrl run: the workflow that rebuilds *Once Upon a "
        "Time: Interactive Learning for Storytelling with Small Language Models* (arXiv "
        "2509.15714). Every table and figure of the run can be rebuilt from these files alone.",
        "",
        "```python",
        "from datasets import load_dataset",
        'stories = load_dataset("<this folder or user/repo>", "rollouts", split="train")',
        "```",
        "",
        "```bash",
        "storyrl analysis all --results <this folder> --output rebuilt/   # tables/ and figures/",
        "hf upload <user>/<repo> <this folder> . --repo-type dataset       # publish it",
        "```",
        "",
        "Each row of `story_eval` names its checkpoint (`model_id`) and each row of "
        "`pretrain_log` its run (`run_id`); each file's Parquet metadata (key `storyrl`) holds "
        "the ids too (listed under Files).",
        "",
        "## Configs",
        "",
        "| config | rows | files | what |",
        "|---|---|---|---|",
        *(
            f"| `{name}` | {rows[name]} | `{layout.PATTERNS[CONFIGS[name][0]]}` | "
            f"{CONFIGS[name][2]} |"
            for name in CONFIGS
            if name in rows
        ),
        "",
        "Also here: `rl/<run_id>/summary.json` (each RL run's budget ledger) and, if the run "
        "had them, `baselines.*` (the BabyLM table's baseline columns).",
    ]
    for name in CONFIGS:
        if name in rows:
            table = CONFIGS[name][1]
            parts += ["", f"### `{name}`", "", f"Table `{table}`: {TABLE_DOCS[table]}.", ""]
            parts.append(column_table(table))
    parts += [
        "",
        "## Provenance",
        "",
        f"- written by storyrl {__version__}, commit `{git_commit()}`",
        f"- the files were made by storyrl {made_by}",
        "- packages where this folder was written: "
        + ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        "",
        "### Files",
        "",
        "| file | config | rows | ids | SHA-256 |",
        "|---|---|---|---|---|",
        *ids,
    ]
    if config is not None:
        parts += [
            "",
            "### Config",
            "",
            "The run's validated config is `config.yaml`: `storyrl analysis` takes its settings "
            "from there (`--config` to use others).",
        ]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------ CLI
def add_parser(sub) -> None:
    s = sub.add_parser(
        "share", help="a results folder as a Hugging Face dataset (Parquet files and a card)"
    )
    s.add_argument("--results", required=True, help="folder in the layout of storyrl.core.layout")
    s.add_argument(
        "--out",
        required=True,
        help="the dataset folder to write: new, or one `share` wrote (a clone of the dataset "
        "repository too): its files are updated, everything else in it is kept",
    )
    s.add_argument("--config", nargs="+", help="the workflow config YAML(s) that made the results")
    s.add_argument("--config-json", help="or: that config, validated, as JSON (what rules pass)")
    s.add_argument("--baselines", help="baselines YAML/CSV of the BabyLM table, copied in")
    s.set_defaults(func=cli_share)


def cli_share(args) -> None:
    config = None
    if args.config and args.config_json:
        raise AnalysisError("give --config or --config-json, not both")
    if args.config:
        from storyrl.config import load

        config = load(*args.config).model_dump(mode="json")
    elif args.config_json:
        config = json.loads(args.config_json)
    rows = share(args.results, args.out, config, args.baselines)
    print(json.dumps(rows))
