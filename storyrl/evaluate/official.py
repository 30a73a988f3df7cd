"""Hand-off to the official BabyLM pipeline (`babylm/evaluation-pipeline-2025`, a checkout the
user names in config): its GLUE fine-tuning, reading and age-of-acquisition (AoA) parts run on
our checkpoints, and their output files are parsed into `eval_scores` rows.

Nothing of the pipeline is copied here. What we own is the calls (the flags of its
`eval_finetuning.sh`, `eval_zero_shot.sh` and `eval_aoa.sh`, as data), where its outputs land
(`<results>/<model folder stem>/main/...`), and the parsing. The pipeline runs as a subprocess
in its own interpreter (`python`), from the checkout's root, as its README asks.

AoA reads one model at several training steps through Hugging Face *revisions* named
`chck_<N>M`. Our milestones are folders, so `revision_store` lays them out as an offline Hub
cache (`refs/chck_<N>M` -> a snapshot of links to the checkpoint's files); the pipeline then
loads `storyrl/<run>` at each revision with `HF_HUB_OFFLINE=1`, unchanged. The pipeline's
AoA score and the `aoa` command live in `storyrl.evaluate.aoa_score`.
"""

import hashlib
import json
import logging
import os
import re
import subprocess
from pathlib import Path

from storyrl.config import OfficialConfig
from storyrl.core.babylm_spec import GLUE_TASKS
from storyrl.evaluate.zero_shot import model_results_dir

log = logging.getLogger(__name__)


READING_SCORES = {
    "EYE TRACKING SCORE": "reading_eye_tracking",
    "SELF-PACED READING SCORE": "reading_self_paced",
}
"""`report.txt` line -> our task name; both are the pipeline's gain in explained variance (%)."""


# --------------------------------------------------------------------------- commands
def glue_command(cfg: OfficialConfig, model, task: str, results_dir) -> list[str]:
    t = GLUE_TASKS[task]
    glue = cfg.data() / "full_eval" / "glue_filtered"
    return [
        cfg.python,
        "-m",
        "evaluation_pipeline.finetune.run",
        "--model_name_or_path",
        str(Path(model).resolve()),
        "--train_data",
        str(glue / f"{task}.train.jsonl"),
        "--valid_data",
        str(glue / f"{task}.valid.jsonl"),
        "--predict_data",
        str(glue / f"{task}.valid.jsonl"),
        "--task",
        task,
        "--num_labels",
        str(t.num_labels),
        "--batch_size",
        str(getattr(cfg, t.batch)),
        "--learning_rate",
        str(cfg.learning_rate),
        "--num_epochs",
        str(getattr(cfg, t.epochs)),
        "--sequence_length",
        str(cfg.sequence_length),
        "--results_dir",
        str(Path(results_dir).resolve()),
        "--metrics",
        *t.metrics,
        "--metric_for_valid",
        t.valid_metric,
        "--seed",
        str(cfg.seed),
        "--verbose",
    ] + (["--take_final"] if cfg.take_final else [])


def reading_command(cfg: OfficialConfig, model, output_dir, variant: str = "full") -> list[str]:
    """`variant` fast: the set eval_zero_shot_fast.sh reads on every checkpoint (submission)."""
    return [
        cfg.python,
        "-m",
        "evaluation_pipeline.reading.run",
        "--model_path_or_name",
        str(Path(model).resolve()),
        "--backend",
        "causal",
        "--data_path",
        str(cfg.data() / f"{variant}_eval" / "reading" / "reading_data.csv"),
        "--output_dir",
        str(Path(output_dir).resolve()),
    ]


def aoa_command(cfg: OfficialConfig, repo_id: str, output_dir) -> list[str]:
    return [
        cfg.python,
        "-m",
        "evaluation_pipeline.AoA_word.run",
        "--model_name",
        repo_id,
        "--backend",
        "causal",
        "--track_name",
        cfg.aoa_track,
        "--word_path",
        str(cfg.data() / "full_eval" / "cdi_childes" / "cdi_childes.json"),
        "--min_context",
        str(cfg.aoa_min_context),
        "--output_dir",
        str(Path(output_dir).resolve()),
    ]


def run_pipeline(
    cfg: OfficialConfig, cmd: list[str], env: dict | None = None, cwd: str | None = None
) -> None:
    """`cmd` from the checkout `cwd` (default: `cfg.path`), as the pipeline's README asks."""
    cwd = cwd or cfg.path
    log.info("in %s: %s", cwd, " ".join(cmd))
    done = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})})
    if done.returncode:
        raise OfficialError(
            f"the official pipeline failed (exit {done.returncode}) in {cwd}: {' '.join(cmd)}"
        )


class OfficialError(RuntimeError):
    """The official pipeline failed or left output we cannot read."""


# --------------------------------------------------------------------------- checkpoints
def pipeline_tokenizer_config(path) -> str:
    """A checkpoint's tokenizer_config.json as the pipeline's transformers (4.51, pinned) reads
    it. transformers 5 saves `tokenizer_class: TokenizersBackend`, a class 4.x does not have (the
    pipeline then fails: 'Unrecognized processing class'); 4.x's generic fast class reads the
    same tokenizer.json. Its default inputs include token_type_ids, which GPT-2 would embed
    with the embedding of token 0 and add to every position (the reading task passes all of the
    tokenizer's outputs to the model), so the inputs are named as GPT-2's own tokenizer names
    them."""
    cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    if cfg.get("tokenizer_class") in (None, "TokenizersBackend"):
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.pop("backend", None)
    cfg.setdefault("model_input_names", ["input_ids", "attention_mask"])
    return json.dumps(cfg, indent=2) + "\n"


def link_checkpoint(folder, dest) -> Path:
    """`dest`: links to the files of checkpoint `folder`, its tokenizer_config.json rewritten
    for the pipeline (`pipeline_tokenizer_config`); the checkpoint itself is left as it is."""
    folder, dest = Path(folder).resolve(), Path(dest)
    if not (folder / "config.json").is_file():
        raise OfficialError(f"{folder}: not a checkpoint folder (no config.json)")
    dest.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        target = dest / f.name
        if f.name == "tokenizer_config.json":
            target.unlink(missing_ok=True)  # never write through a link into the checkpoint
            target.write_text(pipeline_tokenizer_config(f), encoding="utf-8")
        elif not target.is_symlink():
            target.symlink_to(f)
    return dest


def pipeline_checkpoint(model, output_dir) -> Path:
    """The checkpoint as the pipeline loads it: `<output_dir>/checkpoints/<folder name>` (the
    same name, so the pipeline's results land where `glue_result_path` etc. look). The name is
    the link's own where the folder is a link (an RL checkpoint the run stopped short of, which
    links to final/)."""
    name = Path(os.path.abspath(model)).name
    return link_checkpoint(model, Path(output_dir).resolve() / "checkpoints" / name)


# --------------------------------------------------------------------------- outputs
def glue_result_path(results_dir, model, task: str) -> Path:
    return model_results_dir(results_dir, model) / "finetune" / task / "results.txt"


def reading_report_path(output_dir, model) -> Path:
    return model_results_dir(output_dir, model) / "zero_shot" / "causal" / "reading" / "report.txt"


def aoa_result_path(output_dir, repo_id: str) -> Path:
    return (
        model_results_dir(output_dir, repo_id)
        / "zero_shot"
        / "causal"
        / "AoA_word"
        / "surprisal.json"
    )


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise OfficialError(f"{path}: cannot read the official pipeline's output ({err})") from None


def parse_glue_results(path) -> dict[str, float]:
    """`results.txt` of a fine-tuning run: `accuracy: 0.6`, `f1: ...`, `mcc: ...` lines."""
    out = {}
    for n, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"\s*(\w+):\s*(\S+)\s*", line)
        try:
            out[m.group(1)] = float(m.group(2))
        except (AttributeError, ValueError):
            raise OfficialError(
                f"{path}: line {n}: expected '<metric>: <number>', got {line!r}"
            ) from None
    if "accuracy" not in out:
        raise OfficialError(f"{path}: no 'accuracy' line")
    return out


def parse_reading_report(path) -> dict[str, float]:
    """`report.txt` of the reading run -> {our task name: score}."""
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in READING_SCORES:
            try:
                out[READING_SCORES[key.strip()]] = float(value)
            except ValueError:
                raise OfficialError(f"{path}: {key.strip()}: not a number: {value!r}") from None
    missing = [k for k in READING_SCORES if READING_SCORES[k] not in out]
    if missing:
        raise OfficialError(f"{path}: missing line(s) {missing}")
    return out


def parse_aoa(path, expected: list[str]) -> list[dict]:
    """`surprisal.json` entries; every expected step must be there (the pipeline logs and skips
    a checkpoint it cannot load, so a silent gap would otherwise pass)."""
    try:
        data = json.loads(_read(path))
        entries = data["results"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise OfficialError(f"{path}: not an AoA surprisal file (no 'results' list)") from None
    seen = {e.get("step") for e in entries}
    missing = [s for s in expected if s not in seen]
    if missing:
        raise OfficialError(
            f"{path}: no surprisal for step(s) {missing}: the pipeline could "
            "not load them (see its log)"
        )
    return entries


# --------------------------------------------------------------------------- eval_scores rows
def _lines(path: Path) -> int | None:
    try:
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def glue_rows(cfg: OfficialConfig, results: dict[str, dict[str, float]], base: dict) -> list[dict]:
    """Per task: accuracy and F1 in percent, MCC as is; headline: mean accuracy over tasks
    (the paper's 'GLUE (mean acc.)')."""
    glue = cfg.data() / "full_eval" / "glue_filtered"
    rows, accs, total = [], [], 0
    for task, metrics in results.items():
        n = _lines(glue / f"{task}.valid.jsonl")
        total += n or 0
        for metric, value in metrics.items():
            rows.append(
                dict(
                    base,
                    task="glue",
                    subtask=task,
                    metric=metric,
                    value=value if metric == "mcc" else 100 * value,
                    n_items=n,
                )
            )
        accs.append(100 * metrics["accuracy"])
    if accs:
        rows.insert(
            0,
            dict(
                base,
                task="glue",
                subtask="",
                metric="accuracy",
                value=sum(accs) / len(accs),
                n_items=total or None,
            ),
        )
    return rows


def reading_rows(scores: dict[str, float], base: dict) -> list[dict]:
    return [
        dict(base, task=task, subtask="", metric="delta_r2_pct", value=v, n_items=None)
        for task, v in scores.items()
    ]


def aoa_rows(entries: list[dict], models: dict[str, tuple[str, int]]) -> list[dict]:
    """Mean surprisal per word (over its contexts) at every step, and over words (headline);
    `models`: step -> (model id, pretraining words)."""
    import pandas as pd

    df = pd.DataFrame(entries)
    df = df[df.step.isin(models)]
    rows = []
    for step, g in df.groupby("step", sort=False):
        model_id, words = models[step]
        base = dict(model_id=model_id, pretrain_words=words, rl_words=0, task="aoa_surprisal")
        per_word = g.groupby("target_word", sort=False).surprisal.agg(["mean", "size"])
        rows.append(
            dict(
                base,
                subtask="",
                metric="surprisal",
                value=float(per_word["mean"].mean()),
                n_items=int(per_word["size"].sum()),
            )
        )
        rows += [
            dict(
                base,
                subtask=str(w),
                metric="surprisal",
                value=float(r["mean"]),
                n_items=int(r["size"]),
            )
            for w, r in per_word.iterrows()
        ]
    return rows


# --------------------------------------------------------------------------- AoA revisions
def revision_store(hub_cache, repo_id: str, checkpoints: dict[str, str]) -> Path:
    """Lay out `checkpoints` (revision name -> checkpoint folder) as an offline Hugging Face
    cache holding `repo_id`: `refs/<revision>` names a snapshot of links to the folder's files."""
    repo = Path(hub_cache) / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    for revision, folder in checkpoints.items():
        folder = Path(folder).resolve()
        commit = hashlib.sha1(f"{repo_id}@{revision}:{folder}".encode()).hexdigest()
        link_checkpoint(folder, repo / "snapshots" / commit)
        (repo / "refs" / revision).write_text(commit)
    return repo


# --------------------------------------------------------------------------- CLI
def _write(parquet, rows, cfg: OfficialConfig, **ids) -> None:
    from storyrl.core.schemas import make_metadata, write_table

    write_table(
        parquet,
        "eval_scores",
        rows,
        make_metadata("eval_scores", cfg.model_dump(), source="official_pipeline", **ids),
    )


def cli_glue(args):
    """`storyrl eval official glue`: fine-tune and evaluate one GLUE task."""
    cfg = args.section
    model = pipeline_checkpoint(args.model, args.output_dir)
    run_pipeline(cfg, glue_command(cfg, model, args.task, args.output_dir), cwd=cfg.glue_checkout())
    print(parse_glue_results(glue_result_path(args.output_dir, args.model, args.task)))


def cli_reading(args):
    """`storyrl eval official reading`: eye-tracking and self-paced reading scores."""
    cfg = args.section
    model = pipeline_checkpoint(args.model, args.output_dir)
    run_pipeline(cfg, reading_command(cfg, model, args.output_dir, args.variant))
    print(parse_reading_report(reading_report_path(args.output_dir, args.model)))


def cli_collect(args):
    """`storyrl eval official collect`: one model's GLUE and reading outputs -> eval_scores."""
    from storyrl.core.checkpoints import rl_words as checkpoint_rl_words

    cfg = args.section
    rl_words = args.rl_words if args.rl_words is not None else checkpoint_rl_words(args.model)
    base = dict(model_id=args.model_id, pretrain_words=args.pretrain_words, rl_words=rl_words or 0)
    glue = (
        {
            task: parse_glue_results(glue_result_path(Path(args.glue_dir) / task, args.model, task))
            for task in cfg.glue
        }
        if args.glue_dir
        else {}
    )
    rows = glue_rows(cfg, glue, base)
    if args.reading_dir:
        rows += reading_rows(
            parse_reading_report(reading_report_path(args.reading_dir, args.model)), base
        )
    _write(args.parquet, rows, cfg, model_id=args.model_id, model_dir=str(args.model))
    for r in rows:
        if r["subtask"] == "":
            print(f"{r['task']}\t{r['metric']}\t{r['value']:.2f}")
