"""Readers: Parquet results (checked against their schemas) into tidy DataFrames.

Each input's ids (run id, pretraining words, RL words) come, in this order, from an explicit
override (`overrides[path] = {"pretrain_words": ...}`), the file's `storyrl` metadata, the
names the workflow gives (run id `<checkpoint>-seed<S>-<variant>`, checkpoint `.../ckpt-20M`),
or else an error that names the file and the missing id.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from storyrl.analysis import AnalysisError, checks
from storyrl.core.schemas import read_metadata, read_table
from storyrl.core.units import parse_words

SCALE = 9
"""Teacher scores are stored in [0, 1] (sum of three 0-3 scores / 9); reports use 0-9."""
CRITERIA = ("readability", "coherence", "creativity")
HEADLINE_SUBTASKS = ("", "_all")
"""`eval_scores` rows whose subtask is one of these are a task's headline number."""
RUN_ID = re.compile(r"^(?P<ckpt>\d+(?:\.\d+)?[KMB]?)-seed(?P<seed>\d+)(?:-(?P<variant>.+))?$")
CHECKPOINT = re.compile(r"(?:^|[-_])(?:ckpt|pre|pretrain)[-_]?(?P<w>\d+(?:\.\d+)?[KMB]?)$", re.I)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    pretrain_words: int
    seed: int | None
    variant: str


def parse_overrides(items) -> dict[Path, dict]:
    """CLI `--override PATH KEY=VALUE...` items -> {path: {key: value}} (word counts parsed)."""
    out: dict[Path, dict] = {}
    for item in items or []:
        path, *pairs = item
        d = out.setdefault(Path(path), {})
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise AnalysisError(f"--override {path}: '{pair}' is not KEY=VALUE")
            d[key] = parse_words(value) if key.endswith("_words") else value
    return out


def _words(value, path, key) -> int:
    try:
        return parse_words(value if isinstance(value, int) else str(value))
    except ValueError:
        raise AnalysisError(f"{path}: {key} = {value!r} is not a word count") from None


def run_info(path, run_id: str, meta: dict, override: dict | None = None) -> RunInfo:
    ids = {**meta, **(override or {})}
    m = RUN_ID.match(run_id)
    words = ids.get("pretrain_words")
    if words is None and m:
        words = m["ckpt"]
    if words is None and ids.get("checkpoint"):
        c = CHECKPOINT.search(Path(str(ids["checkpoint"])).name)
        words = c["w"] if c else None
    if words is None:
        raise AnalysisError(
            f"{path}: run '{run_id}': pretraining words unknown (no 'pretrain_words' in the "
            "file's metadata, no '<words>-seed<S>-<variant>' run id); give it with "
            f"--override {path} pretrain_words=N"
        )
    seed = ids.get("seed", m["seed"] if m else None)
    variant = ids.get("variant") or (m["variant"] if m and m["variant"] else "base")
    return RunInfo(
        run_id,
        _words(words, path, "pretrain_words"),
        int(seed) if seed is not None else None,
        str(variant),
    )


def _overrides_for(overrides, path) -> dict:
    overrides = overrides or {}
    return overrides.get(Path(path)) or overrides.get(Path(path).resolve()) or {}


def _with_runs(df: pd.DataFrame, path, meta, override) -> pd.DataFrame:
    if df.empty:
        return df.assign(
            pretrain_words=pd.Series(dtype="int64"),
            seed=pd.Series(dtype="Int64"),
            variant=pd.Series(dtype="str"),
        )
    codes, run_ids = pd.factorize(df["run_id"])
    infos = [run_info(path, r, meta, override) for r in run_ids]
    # Indexing by run codes, not a lookup per row: rollouts have 331K rows a run.
    return df.assign(
        pretrain_words=np.array([i.pretrain_words for i in infos], dtype=np.int64)[codes],
        seed=pd.array([i.seed for i in infos], dtype="Int64")[codes],
        variant=np.array([i.variant for i in infos], dtype=object)[codes],
    )


def rubric_id(meta: dict) -> str:
    """The first 12 hex digits of the sha256 of the rubric that scored a table (its metadata's
    teacher); "" where it names none (another scorer, or a file written before it did)."""
    return str((meta.get("teacher") or {}).get("template_sha256") or "")[:12]


def load_steps(paths, overrides=None) -> pd.DataFrame:
    """All steps of all runs, with the run's pretraining words, seed, variant and `rubric`
    (`rubric_id`)."""
    frames, owners, runs = [], [], []
    for p in paths:
        df = read_table(p, "steps").to_pandas()
        if df.empty:
            # Dropping it would remove the run from before/after and equivalence while the
            # ledger still lists it.
            raise AnalysisError(
                f"{p}: no steps (the table is empty): the run never finished a "
                "step; rerun it or leave its folder out"
            )
        checks.no_duplicate_steps(df, p)
        meta = read_metadata(p)
        df = _with_runs(df, p, meta, _overrides_for(overrides, p)).assign(rubric=rubric_id(meta))
        for run_id, g in df.groupby("run_id", sort=False):
            owners.append((run_id, p))
            first = g.iloc[0]
            runs.append(
                {
                    "path": p,
                    "run_id": run_id,
                    "pretrain_words": int(first.pretrain_words),
                    "variant": first.variant,
                    "meta": meta,
                }
            )
        frames.append(df)
    if not frames:
        raise AnalysisError("no steps.parquet given")
    checks.one_file_each("run", owners)
    checks.same_setting(runs)
    return pd.concat(frames, ignore_index=True).sort_values(["run_id", "step"], ignore_index=True)


ROLLOUT_COLUMNS = [
    "run_id",
    "step",
    "sample",
    "budget_words",
    *CRITERIA,
    "parsed",
    "teacher_score",
    "n_tokens",
    "n_words",
    "logprob_sum",
]


AUTHORS_REGEX = re.compile(r"\b(\d)\b[ ,]+(\d)\b[ ,]+(\d)\b")
"""The authors' notebook's reading of a teacher reply: the first three single digits separated
by spaces or commas (analysis.score_statistic: authors_regex)."""


def as_logged(reply: str) -> str:
    """A reply as the authors' generated.csv held it, which their notebook read: stripped by
    their teacher, then every carriage return and line feed turned into a space by their
    trainer's log writer (so `2\\n1\\n1` reads as `2 1 1`)."""
    return str(reply).strip().replace("\r", " ").replace("\n", " ")


def regex_sums(replies) -> list[int | None]:
    """Per reply, the sum of the three digits AUTHORS_REGEX finds in it as logged (`as_logged`;
    not clamped: `7 9 1` is 17), None where it finds none."""
    out = []
    for reply in replies:
        m = AUTHORS_REGEX.search(as_logged(reply)) if reply is not None else None
        out.append(sum(int(d) for d in m.groups()) if m else None)
    return out


def load_rollouts(paths, overrides=None) -> pd.DataFrame:
    """The stories of RL runs without their text (small enough for 331K stories a run); `file`
    says where to read a chosen story's text (`stories.read_texts`). `regex_sum`: the reply
    read as the authors' notebook read it (`regex_sums`; NaN where it does not match)."""
    frames, owners = [], []
    for p in paths:
        df = read_table(p, "rollouts", ROLLOUT_COLUMNS + ["teacher_reply"]).to_pandas()
        df["regex_sum"] = np.array(regex_sums(df.pop("teacher_reply")), dtype=float)
        owners += [(run_id, p) for run_id in df["run_id"].unique()]
        frames.append(
            _with_runs(df, p, read_metadata(p), _overrides_for(overrides, p)).assign(file=str(p))
        )
    checks.one_file_each("run (rollouts)", owners)
    if not frames:
        return pd.DataFrame(
            columns=ROLLOUT_COLUMNS + ["regex_sum", "pretrain_words", "seed", "variant", "file"]
        )
    return pd.concat(frames, ignore_index=True)


def load_pretrain_logs(paths, overrides=None) -> pd.DataFrame:
    """Every pretraining log, one row per logging step, with `run_id` (the file's metadata or
    its folder, `pretrain/<run_id>/log.parquet`) and `milestones` (the run's checkpoint word
    counts from the metadata; empty for a log written without them)."""
    frames = []
    for p in paths:
        ids = {**read_metadata(p), **_overrides_for(overrides, p)}
        df = read_table(p, "pretrain_log").to_pandas()
        milestones = tuple(sorted(_words(w, p, "milestones") for w in ids.get("milestones") or ()))
        frames.append(
            df.assign(
                run_id=str(ids.get("run_id") or Path(p).parent.name),
                milestones=[milestones] * len(df),
                file=str(p),
            )
        )
    if not frames:
        raise AnalysisError("no pretraining log (log.parquet) given")
    return pd.concat(frames, ignore_index=True).sort_values(["run_id", "step"], ignore_index=True)


def load_story_eval(paths, overrides=None) -> pd.DataFrame:
    """One row per story of a checkpoint's story evaluation, with the checkpoint's ids:
    model_id, pretrain_words, rl_words (0: a pretraining checkpoint), run_id ('' if none)."""
    frames, owners = [], []
    for p in paths:
        ids = {**read_metadata(p), **_overrides_for(overrides, p)}
        model_id = str(ids.get("model_id") or Path(p).stem)
        run_id = str(ids.get("run_id") or "")
        rl_words = _words(ids.get("rl_words", 0) or 0, p, "rl_words")
        words = ids.get("pretrain_words")
        if words is None:
            c = CHECKPOINT.search(model_id) or CHECKPOINT.search(
                Path(str(ids.get("checkpoint", ""))).name
            )
            m = RUN_ID.match(run_id) if rl_words else None
            words = c["w"] if c else (m["ckpt"] if m else None)
        if words is None:
            raise AnalysisError(
                f"{p}: pretraining words unknown (no 'pretrain_words' in the "
                f"file's metadata); give it with --override {p} pretrain_words=N"
            )
        if rl_words and not run_id:
            raise AnalysisError(
                f"{p}: an RL checkpoint (rl_words={rl_words}) needs 'run_id' in "
                f"its metadata or --override {p} run_id=ID"
            )
        df = read_table(p, "rollouts", ["teacher_score", "n_words", *CRITERIA]).to_pandas()
        checks.finite(df, p, ["teacher_score"])
        owners.append((model_id, p))
        frames.append(
            df.assign(
                model_id=model_id,
                run_id=run_id,
                rl_words=rl_words,
                pretrain_words=_words(words, p, "pretrain_words"),
                file=str(p),
            )
        )
    checks.one_file_each("story evaluation of model", owners)
    if not frames:
        return pd.DataFrame(
            columns=[
                "teacher_score",
                "n_words",
                *CRITERIA,
                "model_id",
                "run_id",
                "rl_words",
                "pretrain_words",
                "file",
            ]
        )
    return pd.concat(frames, ignore_index=True)


def load_eval(paths, overrides=None) -> pd.DataFrame:
    """Headline `eval_scores` rows (subtask '' or '_all') of every model; ids missing in the
    rows are taken from the file's metadata or the override. A (model, task, metric) in two
    files of one kind is refused with both named (`checks.one_file_each`)."""
    frames, owners = [], []
    for p in paths:
        ids = {**read_metadata(p), **_overrides_for(overrides, p)}
        df = read_table(p, "eval_scores").to_pandas()
        for key in ("pretrain_words", "rl_words"):
            if key in _overrides_for(overrides, p):
                df[key] = _words(ids[key], p, key)
            elif df[key].isna().any():
                if ids.get(key) is None and key == "pretrain_words":
                    raise AnalysisError(
                        f"{p}: column 'pretrain_words' has empty rows and the "
                        f"metadata has none; give --override {p} pretrain_words=N"
                    )
                df[key] = df[key].fillna(_words(ids.get(key) or 0, p, key))
        head = df[df["subtask"].isin(HEADLINE_SUBTASKS)]
        # The AoA files of several RL runs repeat the score of their shared pretraining
        # checkpoint by design (workflow/rules/official.smk): such a file, one run's (a
        # `run_id` and no `model_id` in its metadata), is checked against the files of that
        # run only. Any other repeat (a stray copy of a model's file) would be averaged in.
        scope = (
            f", AoA of run {ids['run_id']}" if ids.get("run_id") and not ids.get("model_id") else ""
        )
        keys = head[["model_id", "task", "metric"]].drop_duplicates()
        owners += [(f"{m}: {t} ({k}{scope})", p) for m, t, k in keys.itertuples(index=False)]
        frames.append(head.assign(file=str(p)))
    checks.one_file_each("eval score", owners)
    if not frames:
        return pd.DataFrame(
            columns=[
                "model_id",
                "pretrain_words",
                "rl_words",
                "task",
                "subtask",
                "metric",
                "value",
                "n_items",
                "file",
            ]
        )
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"pretrain_words": "int64", "rl_words": "int64"})


def load_summaries(paths, overrides=None) -> list[tuple[str, dict]]:
    """(run id, ledger summary) per file; the run id is the summary's `run_id` key, the run id
    in its folder's steps.parquet, or the folder's name (`rl/<run_id>/summary.json`)."""
    out = []
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise AnalysisError(f"{p}: not a readable JSON summary ({err})") from None
        if not isinstance(data, dict):
            raise checks.BadResults(f"{p}: a summary must be a JSON object")
        data = {**data, **_overrides_for(overrides, p)}
        checks.check_summary(p, data)
        out.append((str(data.get("run_id") or _folder_run_id(p)), data))
    checks.one_file_each("run summary", [(run_id, p) for (run_id, _), p in zip(out, paths)])
    return out


def _folder_run_id(summary) -> str:
    """The run of `rl/<folder>/summary.json`: what its steps.parquet says (a copy of a run's
    folder under another name is still that run), else the folder's name."""
    steps = Path(summary).with_name("steps.parquet")
    if steps.is_file():
        try:
            run_id = read_metadata(steps).get("run_id")
        except (OSError, ValueError):
            run_id = None
        if run_id:
            return str(run_id)
    return Path(summary).parent.name


def load_baselines(path) -> pd.DataFrame:
    """Baseline columns for the BabyLM table: a YAML mapping `{baseline: {task: value}}` or a
    CSV with a `task` column and one column per baseline. Index: task, columns: baselines."""
    path = Path(path)
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise AnalysisError(f"{path}: expected a mapping baseline -> {{task: value}}")
            df = pd.DataFrame(data)
        else:
            df = pd.read_csv(path)
            if "task" not in df.columns:
                raise AnalysisError(f"{path}: column 'task' missing")
            df = df.set_index("task")
    except (OSError, ValueError) as err:
        if isinstance(err, AnalysisError):
            raise
        raise AnalysisError(f"{path}: cannot read baselines ({err})") from None
    df.index = [task_key(t) for t in df.index]
    return df.apply(pd.to_numeric, errors="coerce").astype(float)


TASK_LABELS = {
    "blimp": "BLiMP",
    "blimp_supplement": "BLiMP supplement",
    "ewok": "EWoK",
    "comps": "COMPS",
    "entity_tracking": "Entity tracking",
    "wug_adj": "WUG adj. (ρ)",
    "wug_past": "WUG past (ρ)",
    "glue": "GLUE",
    "reading_eye_tracking": "Eye tracking",
    "reading_self_paced": "Self-paced reading",
    # The authors scored AoA once, on the interaction-track model (its revisions end with
    # the RL policy); a score of the pretraining checkpoint's revisions alone is ours.
    "aoa": "AoA (official score, r; before RL: ours)",
    "aoa_surprisal": "AoA word surprisal",
}


def task_key(name) -> str:
    """A task's id from an id or a display name: 'BLiMP supplement' -> 'blimp_supplement'."""
    s = str(name).strip()
    for key, label in TASK_LABELS.items():
        if s.lower() in (key, label.lower()):
            return key
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


def words_axis_label(n: float) -> str:
    """20_000_000 -> '20M' for tick labels and tables (non-round numbers get one decimal)."""
    if not np.isfinite(n):
        return str(n)
    for unit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= unit * 0.9995:  # 999,976 is "1M", not "1000K"
            v = n / unit
            return (
                f"{v:.0f}{suffix}"
                if abs(v - round(v)) < 0.05 or abs(v) >= 100
                else f"{v:.1f}{suffix}"
            )
    return f"{n:.0f}"
