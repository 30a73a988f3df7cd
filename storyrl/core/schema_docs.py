"""What the workflow's files hold, in words: each Parquet column's unit and meaning (next to its
type in `storyrl.core.schemas.SCHEMAS`), the fields of its JSON files, and every file under results/.

docs/results.md is generated from this module and SCHEMAS (`storyrl docs results`), and a shared
results folder's dataset card (`storyrl share`) reuses the column tables. A test checks that
every column of SCHEMAS is described here, and only those.
"""

from storyrl.core.schemas import SCHEMAS

# table -> column -> (unit, meaning). Unit "" where the value has none (ids, text, flags).
COLUMNS: dict[str, dict[str, tuple[str, str]]] = {
    "pretrain_log": {
        "step": ("optimizer steps", "the logging step of the Trainer (global step)"),
        "epoch": ("epochs", "fraction of the token stream consumed so far"),
        "words_seen": ("words", "corpus words the model has seen at this step (the x axis)"),
        "tokens_seen": ("tokens", "tokens the model has seen at this step"),
        "loss": ("nats/token", "training cross-entropy over the logging interval"),
        "learning_rate": ("", "the scheduler's learning rate at this step"),
        "grad_norm": ("", "gradient norm before clipping"),
        "tokens_per_s": ("tokens/s", "training throughput since the previous logging step"),
        "run_id": ("", "the pretraining run (pretrain.runs key)"),
    },
    "rollouts": {
        "run_id": ("", "the RL run (empty for a pretraining checkpoint's story evaluation)"),
        "step": ("RL steps", "the step that sampled the story (0 in story evaluation)"),
        "sample": ("", "the story's index within its step's batch"),
        "budget_words": ("words", "interaction budget spent after the step (rl/ledger.py)"),
        "prompt": ("", "the story opening given to the student"),
        "continuation": ("", "the student's story (the continuation of the prompt only)"),
        "teacher_reply": ("", "the teacher's full reply"),
        "readability": ("0-3", "the teacher's readability score; null if the reply did not parse"),
        "coherence": ("0-3", "the teacher's coherence score; null if the reply did not parse"),
        "creativity": ("0-3", "the teacher's creativity score; null if the reply did not parse"),
        "parsed": ("", "whether the reply held the three scores"),
        "well_formed": ("", "whether the reply had the asked-for form (teacher.parse)"),
        "teacher_score": ("0-1", "weighted mean of the three scores / 3; 0.5 when not parsed"),
        "length_bonus": ("", "c * words / max_new_tokens, added to the teacher score"),
        "reward": ("", "(teacher_score + length_bonus) / (1 + c): what RL maximises"),
        "n_tokens": ("tokens", "tokens of the continuation"),
        "n_words": ("words", "whitespace words of the continuation"),
        "logprob_sum": ("nats", "sum of the sampled tokens' log-probabilities (PPO only)"),
        "kl": ("nats", "KL to the reference model summed over the story's tokens (PPO only)"),
        "model_id": ("", "story evaluation: the checkpoint that wrote the story; null in RL runs"),
    },
    "steps": {
        "run_id": ("", "the RL run"),
        "step": ("RL steps", "the step (1, 2, ...)"),
        "budget_words": (
            "words",
            "interaction budget spent after the step: prompt + teacher words",
        ),
        "stories": ("stories", "stories scored so far (interactions)"),
        "generated_words": ("words", "words the student generated so far"),
        "teacher_score_mean": ("0-1", "mean teacher score of the step's stories"),
        "teacher_score_std": ("0-1", "their standard deviation (ddof 1)"),
        "length_bonus_mean": ("", "mean length bonus"),
        "length_bonus_std": ("", "its standard deviation"),
        "reward_mean": ("", "mean reward"),
        "reward_std": ("", "its standard deviation"),
        "parsed_share": ("0-1", "share of teacher replies that parsed"),
        "teacher_failed_calls": ("replies", "teacher calls that failed and scored the default"),
        "teacher_unparsed": ("replies", "replies that came back but did not parse"),
        "teacher_malformed": ("replies", "replies not in the asked-for form, parsed or not"),
        "response_tokens_mean": ("tokens", "mean story length"),
        "response_words_mean": ("words", "mean story length"),
        "kl": ("nats", "mean over stories of the KL to the reference, summed over tokens"),
        "kl_coef": ("", "the KL coefficient used in the step (adaptive in PPO)"),
        "entropy": ("nats", "mean over stories of the summed -log p of the sampled tokens"),
        "policy_entropy": ("nats/token", "mean per-token entropy of the policy in the update"),
        "ratio": ("", "mean probability ratio new/old policy over minibatches"),
        "policy_loss": ("", "the update's policy-gradient loss"),
        "value_loss": ("", "the value head's loss (PPO; NaN otherwise)"),
        "clipfrac": ("0-1", "share of tokens whose ratio was clipped"),
        "approxkl": ("nats", "approximate KL between old and new policy in the update"),
        "value_var_explained": ("", "1 - Var(returns - values) / Var(returns) (PPO)"),
        "skipped_minibatches": ("minibatches", "updates zeroed for a ratio over the threshold"),
        "skipped_batches": (
            "batches",
            "batches dropped so far by an error inside their step (rl.on_step_error: skip)",
        ),
        "time_sample_s": ("s", "wall time sampling the batch"),
        "time_score_s": ("s", "wall time the teacher took to score it"),
        "time_update_s": ("s", "wall time of the policy update"),
    },
    "teacher_scores": {
        "row": ("", "the story's row in the input Parquet"),
        "prompt": ("", "the story opening"),
        "continuation": ("", "the story"),
        "teacher_reply": ("", "the teacher's full reply"),
        "readability": ("0-3", "readability score; null if the reply did not parse"),
        "coherence": ("0-3", "coherence score; null if the reply did not parse"),
        "creativity": ("0-3", "creativity score; null if the reply did not parse"),
        "parsed": ("", "whether the reply held the three scores"),
        "well_formed": ("", "whether the reply had the asked-for form (teacher.parse)"),
        "failed_call": ("", "whether the call failed (the default score was used)"),
        "teacher_score": ("0-1", "weighted mean of the three scores / 3; 0.5 when not parsed"),
        "length_bonus": ("", "c * words / max_new_tokens"),
        "reward": ("", "(teacher_score + length_bonus) / (1 + c)"),
        "n_words": ("words", "whitespace words of the continuation"),
    },
    "agreement": {
        "run_id": ("", "the RL run the story comes from"),
        "step": ("RL steps", "the step that sampled it"),
        "sample": (
            "",
            "its index within the step's batch (with run_id and step: its rollouts row)",
        ),
        "tenth": ("", "the tenth of the run's steps it was drawn from"),
        "teacher": ("", "the further teacher that re-scored it"),
        "teacher_reply": ("", "that teacher's full reply"),
        "readability": ("0-3", "its readability score; null if the reply did not parse"),
        "coherence": ("0-3", "its coherence score; null if the reply did not parse"),
        "creativity": ("0-3", "its creativity score; null if the reply did not parse"),
        "parsed": ("", "whether its reply held the three scores"),
        "failed_call": ("", "whether its call failed"),
        "teacher_score": ("0-1", "its weighted score (0.5 when not parsed)"),
        "orig_readability": ("0-3", "the training teacher's readability score"),
        "orig_coherence": ("0-3", "the training teacher's coherence score"),
        "orig_creativity": ("0-3", "the training teacher's creativity score"),
        "orig_parsed": ("", "whether the training teacher's reply parsed"),
        "orig_teacher_score": ("0-1", "the training teacher's score"),
        "n_words": ("words", "whitespace words of the story"),
        "n_tokens": ("tokens", "tokens of the story"),
    },
    "eval_scores": {
        "model_id": ("", "the checkpoint evaluated (see the model ids in docs/results.md)"),
        "pretrain_words": ("words", "words the checkpoint saw in pretraining"),
        "rl_words": ("words", "interaction budget words of RL (0 for pretraining checkpoints)"),
        "task": ("", "the BabyLM task; fast-set tasks end in _fast"),
        "subtask": ("", "a task's subset (a BLiMP paradigm...); empty for the task's total"),
        "metric": ("", "accuracy, f1, mcc, ... as the official pipeline names it"),
        "value": (
            "metric",
            "the score in the unit of `metric`: accuracy, accuracy_by_* and f1 in percent "
            "(0-100, as the official pipeline reports them), mcc, spearman_rho and pearson_r as "
            "coefficients (-1 to 1), delta_r2_pct in percent, surprisal as the official AoA "
            "pipeline gives it",
        ),
        "n_items": ("items", "items the value averages over"),
    },
}

TABLE_DOCS: dict[str, str] = {
    "pretrain_log": "one row per logging step of one pretraining run",
    "rollouts": "one row per story the teacher scored (RL runs and story evaluation)",
    "steps": "one row per RL step: batch statistics (PPO-only columns are NaN for GRPO/RLOO)",
    "teacher_scores": "one row per story scored by `storyrl teacher score`",
    "agreement": "one row per RL story re-scored by a further teacher (judge agreement)",
    "eval_scores": "tidy long format: one row per model, task, subtask and metric",
}

# JSON files: file -> field -> meaning.
JSON_FIELDS: dict[str, dict[str, str]] = {
    "rl/<run_id>/summary.json": {
        "budget": "the run's interaction budget (words)",
        "prompt_words": "words of the first batch's prompts, charged once",
        "teacher_words": "words of every teacher reply",
        "budget_words": "prompt_words + teacher_words: the budget spent",
        "generated_words": "words the student generated",
        "stories": "stories scored (interactions)",
        "steps": "RL steps taken",
        "skipped_batches": "batches dropped by an error inside their step (rl.on_step_error: skip)",
        "total_words_seen": "pretraining words + budget_words (when the pretraining words are known)",
        "input_words": "distinct corpus words + budget_words (BabyLM interaction-track input)",
        "input_ok, epochs, epochs_ok, generated_ok": "the BabyLM interaction-track limits hold",
        "stopped": "why the run ended: `reason` (`budget`: the next step would pass it; "
        "`prompts`: the prompt set's batches, rl.max_prompts, are used; `max_steps`), "
        "`after_step`, `planned_steps` (what the budget pays for at three words per teacher "
        "reply, or max_steps or the prompt set's batches when fewer) and `detail`; a run that "
        "ends before its planned steps also logs a warning",
    },
    "corpus/<corpus>/stats.json": {
        "path, format, fraction, seed": "what was read and how the subset was drawn",
        "rows_total, rows_selected": "lines of the corpus and of the subset",
        "words": "whitespace words of the subset",
        "per_source": "lines and words of each source (file)",
        "skipped_non_utf8": "lines dropped per source because they were not UTF-8",
    },
    "corpus/<corpus>/tokens.json": {
        "n_tokens, n_words, n_docs": "size of the token stream",
        "vocab_size, eos_id, dtype": "the tokenizer and the .bin's integer type",
        "tokens_per_word": "the ratio that turns milestone words into tokens (and steps)",
        "tokens_per_word_stream, tokens_per_word_sample": "that ratio over the stream, or over "
        "the first ratio_rows rows as the authors measured it",
        "group_rows, group_tokens": "tokens per group of rows, when the corpus section asks",
    },
    "storyrl_checkpoint.json, storyrl_rl.json (in checkpoint folders)": {
        "pretrain_words": "words the checkpoint saw in pretraining",
        "rl_words, label_words, run_id": "RL checkpoints: budget words spent, the milestone "
        "they stand for, the run",
        "tokenizer_sha256": "the fingerprint of the tokenizer the model was trained with "
        "(vocabulary, merges, added tokens): a folder whose tokenizer differs is refused at "
        "every load",
    },
}

# Every file or folder under results/: (path, format, what writes it, what it holds).
FILES: list[tuple[str, str, str, str]] = [
    (
        "config.yaml",
        "YAML",
        "rule run_config",
        "the run's validated config (tracking left out); tables and figures use its `analysis`",
    ),
    ("corpus/<corpus>/raw/", "text files", "rule demo_corpus", "the demo corpus (demo format)"),
    (
        "corpus/<corpus>/subset.parquet",
        "Parquet (text, source)",
        "rule subset",
        "the seeded subset of the corpus, one row per line",
    ),
    ("corpus/<corpus>/stats.json", "JSON", "rule subset", "lines and words of the subset"),
    ("corpus/<corpus>/tokenizer/", "HF tokenizer", "rule tokenizer", "the byte-level BPE"),
    (
        "corpus/<corpus>/tokens.bin, tokens.json",
        "flat integers, JSON",
        "rule tokens",
        "the subset tokenized once",
    ),
    (
        "pretrain/<run_id>/log.parquet",
        "Parquet `pretrain_log`",
        "rule pretrain",
        "the pretraining log",
    ),
    (
        "pretrain/<run_id>/ckpt-<words>/",
        "HF model",
        "rule pretrain",
        "a milestone checkpoint; storyrl_checkpoint.json",
    ),
    ("rl/<run_id>/steps.parquet", "Parquet `steps`", "rule rl", "one row per RL step"),
    ("rl/<run_id>/rollouts.parquet", "Parquet `rollouts`", "rule rl", "every story of the run"),
    ("rl/<run_id>/summary.json", "JSON", "rule rl", "the budget ledger's totals"),
    (
        "rl/<run_id>/final/, checkpoints/<words>/",
        "HF model",
        "rule rl",
        "the final policy and the planned checkpoints (one the run stopped short of: a link to "
        "final/); storyrl_rl.json",
    ),
    ("rl/<run_id>/teacher_cache.sqlite", "SQLite", "rule rl", "the teacher's score cache"),
    (
        "story_eval/<model_id>.parquet",
        "Parquet `rollouts`",
        "rules story_eval_pre, story_eval_rl",
        "stories of one checkpoint, step 0; metadata pretrain_words, rl_words, run_id",
    ),
    (
        "eval/<model_id>.parquet",
        "Parquet `eval_scores`",
        "rules zero_shot_pre, zero_shot_rl",
        "zero-shot BabyLM scores (full and fast sets)",
    ),
    (
        "eval/<model_id>.official.parquet",
        "Parquet `eval_scores`",
        "rule official_collect",
        "GLUE and reading scores through the official pipeline",
    ),
    (
        "eval/<pretrain run>-aoa.official.parquet, <rl run>-rl-aoa.official.parquet",
        "Parquet `eval_scores`",
        "rules official_aoa, official_aoa_rl",
        "age-of-acquisition surprisal and the pipeline's AoA score",
    ),
    (
        "eval_data/demo/",
        "official layout",
        "rule demo_eval_data",
        "demo evaluation sets (when zero_shot.data_path is not set)",
    ),
    (
        "eval/official/<model_id>/",
        "official layout",
        "rules zero_shot_pre, zero_shot_rl",
        "the zero-shot predictions as the official pipeline writes them",
    ),
    (
        "official/<model_id>/glue/<task>/, reading/",
        "official layout",
        "rules official_*",
        "the official pipeline's outputs",
    ),
    (
        "submission/<model_id>.json",
        "JSON",
        "rule submission",
        "the BabyLM 2025 leaderboard file (as collate_preds.py --fast)",
    ),
    (
        "agreement/<teacher>/<run_id>.parquet",
        "Parquet `agreement`",
        "rules teacher_agreement, teacher_agreement_gpu",
        "a sample of the run's stories re-scored by a further teacher (optional)",
    ),
    ("tables/<name>.csv, .md, .tex", "tables", "rule table", "the paper's tables"),
    ("figures/<name>.pdf, .png", "figures", "rule figure", "the paper's figures"),
    (
        "share/",
        "Parquet + README.md",
        "rule share",
        "the results as a Hugging Face dataset (storyrl share)",
    ),
    (
        "logs/<rule>/...log, benchmarks/<rule>/...tsv",
        "text, TSV",
        "every rule",
        "each job's log and snakemake's time and memory record",
    ),
]


def undocumented() -> dict[str, set[str]]:
    """Columns of SCHEMAS without a meaning here, and meanings of columns that do not exist."""
    out = {}
    for table in SCHEMAS.keys() | COLUMNS.keys():
        have = set(SCHEMAS[table].names) if table in SCHEMAS else set()
        said = set(COLUMNS.get(table, {}))
        if have ^ said:
            out[table] = have ^ said
    return out


def column_table(table: str) -> str:
    """A Markdown table of `table`'s columns: name, type, unit, meaning."""
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    for field in SCHEMAS[table]:
        unit, meaning = COLUMNS[table][field.name]
        lines.append(f"| `{field.name}` | {field.type} | {unit} | {meaning} |")
    return "\n".join(lines)


RESULTS_HEADER = """# Results: every file the workflow writes

<!-- Generated by `storyrl docs results --output docs/results.md` from storyrl/core/schemas.py (the
tables' columns and types) and storyrl/core/schema_docs.py (their units and meaning). Do not edit by
hand. -->

Everything lands under `results/` (paths below are relative to it). The Parquet tables are what
the analysis reads: a folder holding only them (and the RL runs' `summary.json`) rebuilds every
table and figure (`storyrl analysis all --results DIR`), and `storyrl share` publishes them as a
Hugging Face dataset. Every Parquet file carries, in its key-value metadata under `storyrl`, a
JSON object with the table name, the storyrl version, the git commit, the hash of the config
section that made it and the ids that matter (run id, model id, pretraining and RL words,
checkpoint, seed, algorithm): read it with `storyrl.core.schemas.read_metadata(path)`.

Model ids: `<pretrain run>-pre-<words>` for a pretraining checkpoint, `<rl run>-rl-<words>`
for an RL checkpoint and `<rl run>-rl-final` for a final policy; RL run ids are
`<checkpoint>-seed<S>-<variant>`.
"""


def results_page() -> str:
    parts = [
        RESULTS_HEADER,
        "## Files",
        "",
        "| path | format | written by | holds |",
        "|---|---|---|---|",
        *(f"| `{p}` | {fmt} | {rule} | {what} |" for p, fmt, rule, what in FILES),
        "",
        "## Parquet tables",
    ]
    for table in SCHEMAS:
        parts += [
            "",
            f"### {table}",
            "",
            TABLE_DOCS[table][0].upper() + TABLE_DOCS[table][1:] + ".",
            "",
        ]
        parts.append(column_table(table))
    parts += ["", "## JSON files"]
    for name, fields in JSON_FIELDS.items():
        parts += ["", f"### {name}", "", "| field | meaning |", "|---|---|"]
        parts += [f"| `{k}` | {v} |" for k, v in fields.items()]
    return "\n".join(parts) + "\n"
