"""The Parquet tables the workflow writes: one schema each, file-level metadata, checked reads.

Every table carries, in its Parquet key-value metadata under `storyrl`, a JSON object with the
storyrl version, the git commit, the hash of the config section that produced it and the ids
that matter (run id, checkpoint, teacher, rubric hash, seed...). Figures and tables read only
these files, so a folder of them is enough to rebuild every table and figure.
"""

import hashlib
import json
import subprocess
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storyrl import __version__
from storyrl.core.atomic import atomic_path
from storyrl.core.redact import portable_ids

META_KEY = b"storyrl"

SCHEMAS: dict[str, pa.Schema] = {
    # One row per logging step of pretraining.
    "pretrain_log": pa.schema(
        [
            ("step", pa.int64()),
            ("epoch", pa.float64()),
            ("words_seen", pa.int64()),
            ("tokens_seen", pa.int64()),
            ("loss", pa.float64()),
            ("learning_rate", pa.float64()),
            ("grad_norm", pa.float64()),
            ("tokens_per_s", pa.float64()),
            ("run_id", pa.string()),
        ]
    ),
    # One row per story the teacher scored (RL rollouts and story evaluation).
    "rollouts": pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("sample", pa.int64()),
            ("budget_words", pa.int64()),
            ("prompt", pa.string()),
            ("continuation", pa.string()),
            ("teacher_reply", pa.string()),
            ("readability", pa.int8()),
            ("coherence", pa.int8()),
            ("creativity", pa.int8()),
            ("parsed", pa.bool_()),
            ("well_formed", pa.bool_()),  # the reply had the asked-for form (teacher.parse)
            ("teacher_score", pa.float64()),
            ("length_bonus", pa.float64()),
            ("reward", pa.float64()),
            ("n_tokens", pa.int64()),
            ("n_words", pa.int64()),
            ("logprob_sum", pa.float64()),
            ("kl", pa.float64()),
            ("model_id", pa.string()),
        ]
    ),
    # One row per RL step: the per-batch statistics (PPO-only columns are NaN for GRPO/RLOO).
    "steps": pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("budget_words", pa.int64()),
            ("stories", pa.int64()),
            ("generated_words", pa.int64()),
            ("teacher_score_mean", pa.float64()),
            ("teacher_score_std", pa.float64()),
            ("length_bonus_mean", pa.float64()),
            ("length_bonus_std", pa.float64()),
            ("reward_mean", pa.float64()),
            ("reward_std", pa.float64()),
            ("parsed_share", pa.float64()),
            ("teacher_failed_calls", pa.float64()),  # counts (float like skipped_minibatches)
            ("teacher_unparsed", pa.float64()),
            ("teacher_malformed", pa.float64()),  # replies not in the asked-for form, parsed or not
            ("response_tokens_mean", pa.float64()),
            ("response_words_mean", pa.float64()),
            ("kl", pa.float64()),
            ("kl_coef", pa.float64()),
            ("entropy", pa.float64()),
            ("policy_entropy", pa.float64()),
            ("ratio", pa.float64()),
            ("policy_loss", pa.float64()),
            ("value_loss", pa.float64()),
            ("clipfrac", pa.float64()),
            ("approxkl", pa.float64()),
            ("value_var_explained", pa.float64()),
            ("skipped_minibatches", pa.float64()),
            # batches dropped so far by an error inside their step (rl.on_step_error: skip); a
            # float like the other counts, so that a table written before it (nulls) round-trips
            # through pandas
            ("skipped_batches", pa.float64()),
            ("time_sample_s", pa.float64()),
            ("time_score_s", pa.float64()),
            ("time_update_s", pa.float64()),
        ]
    ),
    # One row per story scored by `storyrl teacher score` (the teacher columns of `rollouts`).
    "teacher_scores": pa.schema(
        [
            ("row", pa.int64()),
            ("prompt", pa.string()),
            ("continuation", pa.string()),
            ("teacher_reply", pa.string()),
            ("readability", pa.int8()),
            ("coherence", pa.int8()),
            ("creativity", pa.int8()),
            ("parsed", pa.bool_()),
            ("well_formed", pa.bool_()),
            ("failed_call", pa.bool_()),
            ("teacher_score", pa.float64()),
            ("length_bonus", pa.float64()),
            ("reward", pa.float64()),
            ("n_words", pa.int64()),
        ]
    ),
    # One row per sampled RL story re-scored by a further teacher (judge agreement), beside the
    # run's own teacher's scores of the same story (`orig_*`, from its rollouts).
    "agreement": pa.schema(
        [
            ("run_id", pa.string()),
            ("step", pa.int64()),
            ("sample", pa.int64()),
            ("tenth", pa.int64()),
            ("teacher", pa.string()),
            ("teacher_reply", pa.string()),
            ("readability", pa.int8()),
            ("coherence", pa.int8()),
            ("creativity", pa.int8()),
            ("parsed", pa.bool_()),
            ("failed_call", pa.bool_()),
            ("teacher_score", pa.float64()),
            ("orig_readability", pa.int8()),
            ("orig_coherence", pa.int8()),
            ("orig_creativity", pa.int8()),
            ("orig_parsed", pa.bool_()),
            ("orig_teacher_score", pa.float64()),
            ("n_words", pa.int64()),
            ("n_tokens", pa.int64()),
        ]
    ),
    # Tidy long format of every evaluation number.
    "eval_scores": pa.schema(
        [
            ("model_id", pa.string()),
            ("pretrain_words", pa.int64()),
            ("rl_words", pa.int64()),
            ("task", pa.string()),
            ("subtask", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("n_items", pa.int64()),
        ]
    ),
}


class SchemaError(ValueError):
    """A Parquet file does not have the columns its table must have."""


@cache
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(section) -> str:
    """A short, stable hash of a config section (a dict, or anything JSON-serialisable)."""
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def make_metadata(table: str, config_section=None, **ids) -> dict:
    meta = {"table": table, "storyrl_version": __version__, "git_commit": git_commit()}
    if config_section is not None:
        meta["config_hash"] = config_hash(config_section)
    # Absolute paths (home folders, scratch) and URL credentials stay out of shared files.
    meta.update(portable_ids(ids))
    return meta


def to_table(table: str, data, meta: dict) -> pa.Table:
    """Conform `data` (a DataFrame, a dict of columns or a list of row dicts) to the schema."""
    schema = SCHEMAS[table]
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        data = data.to_dict(orient="list")
    if isinstance(data, list):
        data = {name: [row.get(name) for row in data] for name in schema.names}
    data = dict(data)
    rows = len(next(iter(data.values()), []))
    name = ID_FROM_METADATA.get(table)
    if name is not None and all(v is None for v in data.get(name, [])):
        # Every row names its model or run: files are concatenated once read as a dataset.
        data[name] = [meta.get(name)] * rows
    for name in added_columns(table) & set(schema.names):
        if name not in data:
            data[name] = [None] * rows
    missing = [name for name in schema.names if name not in data]
    if missing:
        raise SchemaError(f"{table}: missing columns {missing}")
    arrays = [pa.array(data[f.name], type=f.type) for f in schema]
    full = schema.with_metadata({META_KEY: json.dumps(meta, default=str).encode()})
    return pa.Table.from_arrays(arrays, schema=full)


def write_table(path, table: str, data, meta: dict) -> None:
    """Write atomically: readers never see a half-written file."""
    tbl = to_table(table, data, meta)
    with atomic_path(path) as tmp:
        pq.write_table(tbl, tmp)


def read_metadata(path) -> dict:
    raw = pq.read_schema(path).metadata or {}
    return json.loads(raw.get(META_KEY, b"{}"))


# Columns added after files were first written: a file without one reads it as nulls.
ADDED_COLUMNS = {"well_formed", "teacher_malformed", "skipped_batches"}

# Id columns a writer need not give: filled from the file's metadata (a story evaluation's model,
# a pretraining log's run); null where the metadata has none (an RL run's own rollouts). Added
# after files were first written too.
ID_FROM_METADATA = {"rollouts": "model_id", "pretrain_log": "run_id"}


def added_columns(table: str) -> set[str]:
    return ADDED_COLUMNS | ({ID_FROM_METADATA[table]} if table in ID_FROM_METADATA else set())


def read_table(path, table: str, columns: list[str] | None = None) -> pa.Table:
    """Read and check that every column of the schema is there with a compatible type.

    `columns`: read only these (the whole schema is still checked); large tables such as
    rollouts are then read without their text columns. Compatible: another integer width, a
    float column holding whole numbers, `large_string` for `string` (pandas writes those back)."""
    path = Path(path)
    try:
        got = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise SchemaError(f"{path}: not a readable Parquet file ({err})") from None
    absent = []
    for field in SCHEMAS[table]:
        if field.name not in got.names:
            if field.name in added_columns(table):
                absent.append(field.name)
                continue
            raise SchemaError(f"{path}: column '{field.name}' missing (expected table '{table}')")
        have = got.field(field.name).type
        if have != field.type and not _castable(have, field.type):
            raise SchemaError(
                f"{path}: column '{field.name}' has type {have}, expected {field.type}"
            )
    want = pa.schema([SCHEMAS[table].field(c) for c in (columns or SCHEMAS[table].names)])
    present = [n for n in want.names if n not in absent]
    raw = pq.read_table(path, columns=present)
    arrays = []
    for f in want:
        if f.name in absent:
            arrays.append(pa.nulls(raw.num_rows, f.type))
            continue
        try:
            arrays.append(raw.column(f.name).cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise SchemaError(
                f"{path}: column '{f.name}' ({raw.schema.field(f.name).type}) does not fit "
                f"{f.type}: {str(err).splitlines()[0]}"
            ) from None
    return pa.Table.from_arrays(arrays, schema=want)


def _castable(have: pa.DataType, want: pa.DataType) -> bool:
    numeric = pa.types.is_integer, pa.types.is_floating
    if any(f(have) for f in numeric) and any(f(want) for f in numeric):
        return True
    text = pa.types.is_string, pa.types.is_large_string
    return any(f(have) for f in text) and any(f(want) for f in text)
