"""From per-candidate scores to the official numbers, report, predictions and tidy rows.

Follows `sentence_zero_shot/compute_results.py` and `run.py` of the official pipeline at
temperature 1: the chosen candidate is the first one with the highest score (a tie goes to
candidate 0, the correct one); accuracy (percent) per value of every metadata key, in first-seen
order; the headline is the unweighted mean over UIDs, except entity tracking (mean per file
over its `numops` groups, then mean over files) and WUG (Spearman's rho between the softmax
probability of candidate 0 and the human ratio).
"""

import json
from dataclasses import dataclass, field

from storyrl.evaluate.tasks import Item, Task

ENTITY_SPLITS = ("regular", "ambiref", "move_contents")


@dataclass
class TaskResult:
    task: Task
    sections: dict[str, dict[str, float]]
    """Metadata key -> value -> accuracy (percent) or, for WUG, {"UID": {"avg": rho}}."""
    average: float
    counts: dict[str, dict[str, int]]
    """Items behind each number of `sections`."""
    predictions: dict = field(repr=False, default_factory=dict)
    n_items: int = 0
    ties: int = 0
    """Items whose best score is shared by several candidates: the tie rule gives them to
    candidate 0, the correct one, so a model that scores everything alike looks perfect. Ours
    only (log, the eval_scores Parquet's metadata); the official files do not carry it."""

    @property
    def metric_label(self) -> str:
        return "SPEARMAN'S RHO" if self.task.metric == "spearman" else "ACCURACY"


def choose(scores: list[float]) -> int:
    """Index of the first maximum (the official `torch.max(..., dim=1)` tie rule)."""
    best = max(scores)
    return scores.index(best)


def is_tie(scores: list[float]) -> bool:
    return len(scores) > 1 and scores.count(max(scores)) > 1


def spearman(a, b) -> float:
    """Spearman's rho with average ranks for ties (as scipy.stats.spearmanr for 1-D input)."""
    import numpy as np
    import pandas as pd

    ra = pd.Series(np.asarray(a, dtype=np.float64)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, dtype=np.float64)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def aggregate(task: Task, items: list[Item], scores: list[list[float]]) -> TaskResult:
    import torch

    chosen = [choose(s) for s in scores]
    preds: dict[str, list[dict]] = {}
    if task.metric == "spearman":
        # Softmax over the candidates' fp32 log-probs, as the official pipeline stacks them.
        probs = [torch.softmax(torch.tensor(s, dtype=torch.float32), 0)[0].item() for s in scores]
        for item, c, p in zip(items, chosen, probs):
            lst = preds.setdefault(item.uid, [])
            lst.append({"id": f"{item.uid}_{len(lst)}", "pred": item.preds[c], "prob": p})
        rho = spearman(probs, [item.ratio for item in items])
        return TaskResult(
            task,
            {"UID": {"avg": rho}},
            rho,
            {"UID": {"avg": len(items)}},
            _wrap(preds),
            len(items),
            sum(map(is_tie, scores)),
        )

    total: dict[str, dict[str, int]] = {}
    correct: dict[str, dict[str, int]] = {}
    for item, c in zip(items, chosen):
        for key, value in item.metadata.items():
            total.setdefault(key, {}).setdefault(value, 0)
            correct.setdefault(key, {}).setdefault(value, 0)
            total[key][value] += 1
            correct[key][value] += c == 0
        lst = preds.setdefault(item.uid, [])
        lst.append({"id": f"{item.uid}_{len(lst)}", "pred": item.preds[c]})
    sections = {
        key: {v: 100.0 * correct[key][v] / n for v, n in vals.items()}
        for key, vals in total.items()
    }
    counts = {key: dict(vals) for key, vals in total.items()}
    uids = sections["UID"]
    if task.official != "entity_tracking":
        average = sum(uids.values()) / len(uids)
    else:
        split_means = []
        for split in ENTITY_SPLITS:
            keys = [k for k in uids if k.startswith(split)]
            if not keys:
                continue
            # The official report lists each file's mean in the UID section, after the groups.
            mean = sum(uids[k] for k in keys) / len(keys)
            counts["UID"][split] = sum(counts["UID"][k] for k in keys)
            uids[split] = mean
            split_means.append(mean)
        average = sum(split_means) / len(split_means)
    return TaskResult(
        task, sections, average, counts, _wrap(preds), len(items), sum(map(is_tie, scores))
    )


def _wrap(preds: dict[str, list[dict]]) -> dict:
    return {uid: {"predictions": lst} for uid, lst in preds.items()}


def report_text(result: TaskResult, temperature: float = 1.0) -> str:
    """`best_temperature_report.txt`, line for line as the official `create_evaluation_report`."""
    m = result.metric_label
    lines = [f"TEMPERATURE: {temperature:.2f}", ""]
    for key, values in result.sections.items():
        lines.append(f"### {key.upper()} {m}")
        lines += [f"{name}: {value:.2f}" for name, value in values.items()]
        lines.append("")
    lines += [f"### AVERAGE {m}", f"{result.average:.2f}", ""]
    return "\n".join(lines) + "\n"


def predictions_json(result: TaskResult) -> str:
    return json.dumps(result.predictions)  # default separators, as the official json.dump


def tidy_rows(
    result: TaskResult,
    task_label: str,
    model_id: str,
    pretrain_words: int | None = None,
    rl_words: int | None = None,
) -> list[dict]:
    """Rows of the `eval_scores` table: the headline (subtask ''), then every UID and group.

    `metric` is `accuracy` (percent) or `spearman_rho`; groups of other metadata keys get
    `accuracy_by_<key>` so that UID rows stay one per subtask.
    """
    base = {
        "model_id": model_id,
        "pretrain_words": pretrain_words,
        "rl_words": rl_words,
        "task": task_label,
    }
    if result.task.metric == "spearman":
        return [
            dict(
                base,
                subtask="",
                metric="spearman_rho",
                value=result.average,
                n_items=result.n_items,
            )
        ]
    rows = [dict(base, subtask="", metric="accuracy", value=result.average, n_items=result.n_items)]
    for key, values in result.sections.items():
        metric = "accuracy" if key == "UID" else f"accuracy_by_{key}"
        for name, value in values.items():
            rows.append(
                dict(
                    base,
                    subtask=str(name),
                    metric=metric,
                    value=value,
                    n_items=result.counts[key][name],
                )
            )
    return rows
