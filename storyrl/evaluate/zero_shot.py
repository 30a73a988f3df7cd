"""Entry points: score BabyLM zero-shot tasks on one checkpoint with one model load.

`evaluate_task` scores one task folder; `run_zero_shot` scores several tasks of an
`evaluation_data/` folder with one `Scorer`, writes the official results layout and returns (and
optionally writes) tidy `eval_scores` rows. `storyrl eval zero-shot` mirrors the official
`sentence_zero_shot.run` flags for a single task.
"""

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from storyrl.config import ZeroShotConfig
from storyrl.core.atomic import write_text
from storyrl.core.checkpoints import CheckpointError
from storyrl.evaluate.results import TaskResult, aggregate, predictions_json, report_text, tidy_rows
from storyrl.evaluate.tasks import TASKS, VARIANTS, Task, read_items, task_for_official

if TYPE_CHECKING:  # for the annotations only: importing the scorer loads torch
    from storyrl.evaluate.scorer import Scorer

log = logging.getLogger(__name__)


def model_results_dir(output_dir, model, revision_name: str = "main") -> Path:
    """`OUTPUT_DIR/<model stem>/<revision>`: where every part of the official pipeline writes
    for a model (the model folder's name up to its last dot, `Path.stem`)."""
    return Path(output_dir) / Path(str(model)).stem / revision_name


def official_output_path(
    output_dir, model_dir, task: Task, data_path, revision_name: str = "main"
) -> Path:
    """`OUTPUT_DIR/<model stem>/<revision>/zero_shot/causal/<task>/<data stem>`, as the official
    run."""
    return (
        model_results_dir(output_dir, model_dir, revision_name)
        / "zero_shot"
        / "causal"
        / task.official
        / Path(str(data_path)).stem
    )


def evaluate_task(
    scorer: "Scorer", task: Task, data_path, recheck_margin: float = 1.0, progress: bool = False
) -> TaskResult:
    items = read_items(task, data_path)
    flat = scorer.encode_all((t, c) for it in items for t, c in zip(it.texts, it.completions))
    groups, k = [], 0
    for item in items:
        groups.append(flat[k : k + len(item.texts)])
        k += len(item.texts)
    t0 = time.perf_counter()
    scores = scorer.score_groups(groups, progress=progress)
    if scorer.low_precision:
        _recheck(scorer, groups, scores, recheck_margin)
    dt = time.perf_counter() - t0
    n = sum(map(len, groups))
    bad = sum(not math.isfinite(v) for g in scores for v in g)
    if bad:
        # The tie rule would pick candidate 0 (the correct one) for every NaN item: 100%.
        raise CheckpointError(
            f"{scorer.model_dir}: {bad} of {n} candidate scores on {task.name} "
            f"({Path(str(data_path)).name}) are not finite: the model's weights or outputs are "
            "NaN or infinite, so no result of it means anything"
        )
    log.info(
        "%s (%s): %d items, %d candidates in %.1fs (%.0f candidates/s)",
        task.name,
        Path(str(data_path)).name,
        len(items),
        n,
        dt,
        n / max(dt, 1e-9),
    )
    result = aggregate(task, items, scores)
    # Many ties mean a model that tells the candidates apart poorly, yet scores high.
    (log.warning if result.ties > 0.05 * len(items) else log.info)(
        "%s: %d of %d items were ties (each counted for candidate 0, the correct one)",
        task.name,
        result.ties,
        len(items),
    )
    return result


def _recheck(scorer, groups, scores, margin):
    """Rescore in fp32 the items whose choice bf16 rounding could have flipped."""
    close = [
        k for k, s in enumerate(scores) if len(s) > 1 and sorted(s)[-1] - sorted(s)[-2] < margin
    ]
    if not close:
        return
    for k, exact in zip(close, scorer.score_groups([groups[k] for k in close], precise=True)):
        scores[k] = exact
    log.info("re-checked %d of %d items in fp32", len(close), len(scores))


def write_official(result: TaskResult, out_path: Path) -> None:
    write_text(out_path / "best_temperature_report.txt", report_text(result))
    write_text(out_path / "predictions.json", predictions_json(result))


def data_folder(data_path, task: Task, variant: str) -> Path:
    """`<data_path>/<variant>_eval/<task dir>`; `data_path` may also be the variant folder."""
    root = Path(data_path)
    if root.name != VARIANTS[variant]:
        root = root / VARIANTS[variant]
    return root / task.dirs[variant]


def run_zero_shot(
    model_dir,
    data_path,
    output_dir=None,
    cfg: ZeroShotConfig | None = None,
    parquet=None,
    model_id: str | None = None,
    pretrain_words: int | None = None,
    rl_words: int | None = None,
    revision_name: str = "main",
    scorer: "Scorer | None" = None,
    ties: dict | None = None,
) -> list[dict]:
    """Score the tasks of `cfg.variant` (`cfg.tasks_for`) of `data_path` on one checkpoint,
    loading the model once.

    Writes the official layout under `output_dir` (if given) and the tidy rows to `parquet` (if
    given); returns the rows. `ties` (a dict, if given) gets the number of tied items per task
    label; the Parquet's metadata carries them too.
    """
    cfg = cfg or ZeroShotConfig()
    tasks = cfg.tasks_for(cfg.variant)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks: unknown {unknown} (known: {', '.join(TASKS)})")
    from storyrl.evaluate.scorer import Scorer

    scorer = scorer or Scorer(
        model_dir, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size
    )
    model_id = model_id or Path(str(model_dir)).name
    rows = []
    ties = {} if ties is None else ties
    results = []
    for name in tasks:
        task = TASKS[name]
        folder = data_folder(data_path, task, cfg.variant)
        if not folder.is_dir():
            log.warning("%s: no folder %s, skipped", name, folder)
            continue
        label = name if cfg.variant == "full" else f"{name}_fast"
        results.append(
            (task, folder, label, evaluate_task(scorer, task, folder, cfg.recheck_margin))
        )
    # Written once every task scored: a model that turns out broken leaves no partial results.
    for task, folder, label, result in results:
        if output_dir is not None:
            write_official(
                result, official_output_path(output_dir, model_dir, task, folder, revision_name)
            )
        rows += tidy_rows(result, label, model_id, pretrain_words, rl_words)
        ties[label] = result.ties
    if parquet is not None:
        from storyrl.core.schemas import make_metadata, write_table

        meta = make_metadata(
            "eval_scores",
            cfg.model_dump(),
            model_id=model_id,
            model_dir=str(model_dir),
            variant=cfg.variant,
            ties=ties,
        )
        write_table(parquet, "eval_scores", rows, meta)
    return rows


# ------------------------------------------------------------------------------ CLI
def cli_one(args):
    """`storyrl eval zero-shot`: one task, official flags and layout."""
    from storyrl.evaluate.scorer import Scorer

    task = task_for_official(args.task, args.data_path)
    scorer = Scorer(args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    result = evaluate_task(scorer, task, args.data_path, progress=True)
    out = official_output_path(
        args.output_dir, args.model, task, args.data_path, args.revision_name
    )
    write_official(result, out)
    print(report_text(result), end="")


def cli_suite(args):
    """`storyrl eval zero-shot-suite`: several tasks (and variants) on one checkpoint (--model) or
    on several in one process (--models JSON), one model load each, tidy Parquet."""
    from storyrl.evaluate.manifest import ZeroShotEntry, entries

    todo = entries(
        args,
        ZeroShotEntry,
        {
            "model": args.model,
            "variants": args.variant,
            "parquet": args.parquet,
            "output_dir": args.output_dir,
            "model_id": args.model_id,
            "pretrain_words": args.pretrain_words,
            "rl_words": args.rl_words,
        },
    )
    if args.models is None:
        suite_one(todo[0], args)
        return
    from storyrl.evaluate import kept

    # A group job: one broken checkpoint must not cost the others their results (kept.py).
    shared = {
        k: getattr(args, k) for k in ("tasks", "batch_size", "device", "dtype", "revision_name")
    }
    if args.fast_tasks is not None:  # records kept without the option stay valid
        shared["fast_tasks"] = args.fast_tasks
    shared["data"] = kept.folder_identity(args.data_path)
    broken = []
    for e in todo:
        if len(todo) > 1:
            print(f"# {e.model_id or Path(e.model).name}", flush=True)
        outputs = [o for o in (e.parquet, e.output_dir) if o]
        try:
            rec = kept.record(e.model, {**shared, "entry": e.model_dump()})
            if outputs and kept.restore(outputs, rec):
                continue
            suite_one(e, args)
        except CheckpointError as err:
            broken.append(str(err))
            continue
        if outputs:
            kept.keep(outputs, rec)
    kept.fail_on(broken, len(todo))


def suite_one(e, args) -> list[dict]:
    """One checkpoint of the suite (`e`: a manifest.ZeroShotEntry; `args`: the shared flags)."""
    from storyrl.core.checkpoints import rl_words
    from storyrl.core.schemas import make_metadata, write_table
    from storyrl.evaluate.scorer import Scorer

    words = [e.pretrain_words, e.rl_words]
    if words[1] is None:
        words[1] = rl_words(e.model)
    scorer = Scorer(e.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    rows, ties = [], {}
    for variant in e.variants:
        cfg = ZeroShotConfig(
            variant=variant,
            tasks=args.tasks,
            fast_tasks=args.fast_tasks,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
        )
        rows += run_zero_shot(
            e.model,
            args.data_path,
            e.output_dir,
            cfg,
            None,
            e.model_id,
            *words,
            revision_name=args.revision_name,
            scorer=scorer,
            ties=ties,
        )
    if e.parquet is not None:
        model_id = e.model_id or Path(str(e.model)).name
        meta = make_metadata(
            "eval_scores",
            {"tasks": args.tasks, "fast_tasks": args.fast_tasks, "variants": e.variants},
            model_id=model_id,
            model_dir=str(e.model),
            ties=ties,
        )
        write_table(e.parquet, "eval_scores", rows, meta)
    for r in rows:
        if r["subtask"] == "":
            print(f"{r['task']}\t{r['metric']}\t{r['value']:.2f}\t{r['n_items']}", flush=True)
    return rows
