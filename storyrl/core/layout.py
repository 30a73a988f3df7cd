"""Where results live: the one place that names the files the analysis reads and writes.

Layout under a results folder (what the workflow writes; a copy of only these files is enough
to rebuild every table and figure):

    rl/<run_id>/steps.parquet          `steps`: one row per RL step
    rl/<run_id>/rollouts.parquet       `rollouts`: one row per story of the run (optional)
    rl/<run_id>/summary.json           the run's budget ledger summary
    story_eval/<model_id>.parquet      `rollouts` schema, step 0: stories sampled from one
                                       checkpoint; metadata `pretrain_words`, `rl_words`,
                                       `run_id` (RL checkpoints)
    eval/<model_id>.parquet            `eval_scores`: BabyLM numbers of one model (full and/or
                                       fast tasks; fast tasks are named `<task>_fast`)
    pretrain/<run_id>/log.parquet      `pretrain_log`: one row per logging step of pretraining
    agreement/<teacher>/<run_id>.parquet  `agreement`: a sample of the run's stories re-scored
                                       by a further teacher (optional)
    baselines.yaml | baselines.csv     optional: baseline columns of the BabyLM table
    config.yaml                        the validated config of the run that made the files; its
                                       `analysis` section sets every table and figure

Outputs:

    tables/<name>.csv, .md, .tex       one table (names: `registry`)
    figures/<name>.pdf, .png           one figure (names: `registry`)

The workflow's other files (what the stages make for each other):

    corpus/<corpus>/                   raw/ (demo), subset.parquet, stats.json, tokenizer/,
                                       tokens.bin, tokens.json
    pretrain/<run_id>/ckpt-<words>     a pretraining milestone (`units.checkpoint_name`)
    rl/<run_id>/final, checkpoints/<words>   an RL run's policies
    eval/official/<model_id>           the zero-shot pipeline's own outputs of one model
    eval/<model_id>.official.parquet   GLUE, reading and AoA scores (official pipeline)
    official/<model_id>/<part>         the official pipeline's own outputs
    submission/<model_id>.json         a leaderboard submission
    logs/<rule>/<job>.log, benchmarks/<rule>/<job>.tsv   each job's log and benchmark

The workflow's plan (`storyrl.plan`), the stages and `storyrl analysis all` use these
functions, so the paths agree.
"""

from dataclasses import dataclass, field
from pathlib import Path

from storyrl.core.units import checkpoint_name, words_label

RL_DIR = "rl"
PRETRAIN_DIR = "pretrain"
STORY_EVAL_DIR = "story_eval"
EVAL_DIR = "eval"
AGREEMENT_DIR = "agreement"
TABLES_DIR = "tables"
FIGURES_DIR = "figures"
BASELINE_NAMES = ("baselines.yaml", "baselines.yml", "baselines.csv")
CONFIG_FILE = "config.yaml"

TABLE_FORMATS = (".csv", ".md", ".tex")
FIGURE_FORMATS = (".pdf", ".png")


def steps_path(results, run_id: str) -> Path:
    return Path(results) / RL_DIR / run_id / "steps.parquet"


def rollouts_path(results, run_id: str) -> Path:
    return Path(results) / RL_DIR / run_id / "rollouts.parquet"


def summary_path(results, run_id: str) -> Path:
    return Path(results) / RL_DIR / run_id / "summary.json"


def pretrain_log_path(results, run_id: str) -> Path:
    return Path(results) / PRETRAIN_DIR / run_id / "log.parquet"


def story_eval_path(results, model_id: str) -> Path:
    return Path(results) / STORY_EVAL_DIR / f"{model_id}.parquet"


def eval_path(results, model_id: str) -> Path:
    return Path(results) / EVAL_DIR / f"{model_id}.parquet"


def agreement_path(results, teacher: str, run_id: str) -> Path:
    return Path(results) / AGREEMENT_DIR / teacher / f"{run_id}.parquet"


def config_path(results) -> Path:
    return Path(results) / CONFIG_FILE


def corpus_dir(results, corpus: str) -> Path:
    return Path(results) / "corpus" / corpus


def pretrain_dir(results, run_id: str) -> Path:
    return Path(results) / PRETRAIN_DIR / run_id


def pretrain_work_dir(results, run_id: str) -> Path:
    """A pretraining run's resume state (not an output: a job killed by a time limit resumes)."""
    return pretrain_dir(results, run_id) / "work"


def checkpoint_dir(results, run_id: str, words: int) -> Path:
    """A pretraining milestone's folder."""
    return pretrain_dir(results, run_id) / checkpoint_name(words)


def rl_dir(results, run_id: str) -> Path:
    return Path(results) / RL_DIR / run_id


def teacher_cache_path(results, run_id: str) -> Path:
    """The run's own cache of teacher replies (no SQLite file is shared between jobs): a resumed
    run redraws the stories of its unfinished step and finds their replies here."""
    return rl_dir(results, run_id) / "teacher_cache.sqlite"


def rl_checkpoint_dir(results, run_id: str, words: int | None) -> Path:
    """An RL run's checkpoint after `words` of interaction; None: its final policy."""
    run = rl_dir(results, run_id)
    return run / "final" if words is None else run / "checkpoints" / words_label(words)


def zero_shot_dir(results, model_id: str) -> Path:
    """The zero-shot pipeline's own outputs of one model (predictions, per-task reports)."""
    return Path(results) / EVAL_DIR / "official" / model_id


def official_eval_path(results, name: str) -> Path:
    """GLUE/reading scores of a model, or `<run>-aoa` / `<run>-rl-aoa` AoA scores."""
    return Path(results) / EVAL_DIR / f"{name}.official.parquet"


def official_dir(results, name: str, part: str = "") -> Path:
    return Path(results) / "official" / name / part if part else Path(results) / "official" / name


def submission_path(results, model_id: str) -> Path:
    return Path(results) / "submission" / f"{model_id}.json"


def demo_eval_dir(results) -> Path:
    return Path(results) / "eval_data" / "demo"


def log_path(results, rule: str, *parts: str) -> Path:
    return Path(results) / "logs" / rule / f"{'/'.join(parts) if parts else 'all'}.log"


def bench_path(results, rule: str, *parts: str) -> Path:
    return Path(results) / "benchmarks" / rule / f"{'/'.join(parts) if parts else 'all'}.tsv"


def table_path(output, name: str, fmt: str = ".csv") -> Path:
    return Path(output) / TABLES_DIR / f"{name}{fmt}"


def figure_path(output, name: str, fmt: str = ".pdf") -> Path:
    return Path(output) / FIGURES_DIR / f"{name}{fmt}"


@dataclass
class Inputs:
    """Every input file the analysis can use; any list may be empty."""

    steps: list[Path] = field(default_factory=list)
    rollouts: list[Path] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)
    story_eval: list[Path] = field(default_factory=list)
    eval: list[Path] = field(default_factory=list)
    pretrain_logs: list[Path] = field(default_factory=list)
    agreement: list[Path] = field(default_factory=list)
    baselines: Path | None = None


PATTERNS = {
    "steps": f"{RL_DIR}/*/steps.parquet",
    "rollouts": f"{RL_DIR}/*/rollouts.parquet",
    "summaries": f"{RL_DIR}/*/summary.json",
    "story_eval": f"{STORY_EVAL_DIR}/*.parquet",
    "eval": f"{EVAL_DIR}/*.parquet",
    "pretrain_logs": f"{PRETRAIN_DIR}/*/log.parquet",
    "agreement": f"{AGREEMENT_DIR}/*/*.parquet",
}
"""The files of each input (a field of Inputs) under a results folder, as glob patterns; a
shared folder's dataset card names its files with the same patterns."""


def discover(results) -> Inputs:
    """Find the inputs under `results` by the layout above (sorted, so runs are repeatable)."""
    r = Path(results)
    baselines = next((r / n for n in BASELINE_NAMES if (r / n).is_file()), None)
    return Inputs(**{k: sorted(r.glob(p)) for k, p in PATTERNS.items()}, baselines=baselines)


def results_root(path) -> Path | None:
    """The results folder that holds the input file `path` (by the layout above), or None."""
    path = Path(path)
    for pattern in PATTERNS.values():
        if path.match(pattern):
            return path.parents[len(Path(pattern).parts) - 1]
    return None
