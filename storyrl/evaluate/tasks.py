"""The BabyLM 2025 zero-shot tasks as data: where each one lives and how a line becomes an item.

An item is a set of candidate texts of which candidate 0 is the right one; for each candidate
only the `completion` (a suffix of the text) is scored, by character overlap. The decoders
follow the official pipeline (`babylm/evaluation-pipeline-2025`, `sentence_zero_shot/
read_files.py`) field by field, including its metadata keys, which become the sections of the
report in this order.
"""

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storyrl.core.babylm_spec import ZERO_SHOT_DIRS, ZERO_SHOT_VARIANTS


@dataclass
class Item:
    texts: list[str]
    """Full candidate texts, the correct one first."""
    completions: list[str]
    """The scored suffix of each text."""
    uid: str
    """Group of the item: accuracy is per UID, predictions are keyed by it."""
    metadata: dict[str, str]
    """Grouping keys for the report, in the official order (always includes `UID`)."""
    preds: list[str]
    """What `predictions.json` writes when a candidate is chosen."""
    ratio: float | None = None
    """WUG only: share of humans who chose candidate 0."""


def _blimp(raw: dict, path: Path) -> Item:
    good, bad = raw["sentence_good"], raw["sentence_bad"]
    if "field" in raw:
        f = "syntax/semantics" if raw["field"] == "syntax_semantics" else raw["field"]
        meta = {"field": f, "UID": raw["UID"], "linguistics_term": raw["linguistics_term"]}
    else:  # the supplement has no field or UID: the file names the phenomenon
        meta = {"field": "supplement", "UID": path.stem, "linguistics_term": "supplement"}
    return Item([good, bad], [good, bad], meta["UID"], meta, [good, bad])


def _ewok(raw: dict, path: Path) -> Item:
    c = raw["Context1"]
    texts = [f"{c} {raw['Target1']}", f"{c} {raw['Target2']}"]
    comps = [" " + raw["Target1"], " " + raw["Target2"]]
    meta = {
        "UID": raw["Domain"],
        "context_type": raw["ContextType"],
        "context_contrast": raw["ContextDiff"],
        "target_contrast": raw["TargetDiff"],
    }
    return Item(texts, comps, meta["UID"], meta, comps)


def _entity_tracking(raw: dict, path: Path) -> Item:
    uid = f"{path.stem}_{raw['numops']}_ops"
    opts = list(raw["options"])
    return Item([raw["input_prefix"] + o for o in opts], opts, uid, {"UID": uid}, opts)


_COMPS_SUBSETS = {
    "comps_base": "base",
    "comps_wugs": "wugs",
    "comps_wugs_dist-before": "wugs_dist_before",
}


def _comps(raw: dict, path: Path) -> Item:
    phrase = raw["property_phrase"]
    texts = [f"{raw['prefix_acceptable']} {phrase}", f"{raw['prefix_unacceptable']} {phrase}"]
    uid = _COMPS_SUBSETS.get(path.stem, "wugs_dist_in_between")
    # The official predictions.json writes the whole chosen sentence for COMPS.
    return Item(texts, [phrase, phrase], uid, {"UID": uid}, texts)


def _wug(task: str) -> Callable[[dict, Path], Item]:
    def decode(raw: dict, path: Path) -> Item:
        cands = raw["sentences"].split("\t")
        return Item(cands, cands, task, {"UID": task}, cands, ratio=float(raw["ratio"]))

    return decode


@dataclass(frozen=True)
class Task:
    name: str
    """Our name (rows of the Parquet, `--task` of `run_zero_shot`)."""
    official: str
    """The official `--task` value; it names the results folder."""
    dirs: dict[str, str]
    """Data folder under `evaluation_data/<variant>_eval/`, per variant (`full`, `fast`)."""
    decode: Callable[[dict, Path], Item] = field(repr=False)
    metric: str = "accuracy"
    """`accuracy` (percent, mean over UIDs) or `spearman` (rho of P(candidate 0) vs humans)."""


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("blimp", "blimp", ZERO_SHOT_DIRS["blimp"], _blimp),
        Task("blimp_supplement", "blimp", ZERO_SHOT_DIRS["blimp_supplement"], _blimp),
        Task("ewok", "ewok", ZERO_SHOT_DIRS["ewok"], _ewok),
        Task(
            "entity_tracking",
            "entity_tracking",
            ZERO_SHOT_DIRS["entity_tracking"],
            _entity_tracking,
        ),
        Task("comps", "comps", ZERO_SHOT_DIRS["comps"], _comps),
        Task("wug_adj", "wug_adj", ZERO_SHOT_DIRS["wug_adj"], _wug("wug_adj"), metric="spearman"),
        Task(
            "wug_past", "wug_past", ZERO_SHOT_DIRS["wug_past"], _wug("wug_past"), metric="spearman"
        ),
    ]
}
OFFICIAL_TASKS = ("blimp", "ewok", "entity_tracking", "comps", "wug_adj", "wug_past")
VARIANTS = ZERO_SHOT_VARIANTS


def task_for_official(official: str, data_path: str | Path) -> Task:
    """Our task for an official `--task` and data folder (BLiMP and its supplement share one)."""
    if official not in OFFICIAL_TASKS:
        raise ValueError(f"--task: '{official}' is not one of {', '.join(OFFICIAL_TASKS)}")
    name = Path(data_path).name
    for t in TASKS.values():
        if t.official == official and name in t.dirs.values():
            return t
    # An unknown folder name: fall back to the task's main entry (the supplement needs its name).
    return TASKS["blimp" if official == "blimp" else official]


def read_items(task: Task, data_path: str | Path) -> list[Item]:
    """Every `*.jsonl` file of the folder, in directory order as the official reader does."""
    data_path = Path(data_path)
    if not data_path.is_dir():
        raise FileNotFoundError(f"{task.name}: data folder {data_path} does not exist")
    items = []
    # os.listdir order, like the official `Path.iterdir()`: it decides the order of the lines
    # of the report and of predictions.json, so keep it rather than sorting.
    for name in os.listdir(data_path):
        path = data_path / name
        if path.suffix != ".jsonl":
            continue
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    items.append(task.decode(json.loads(line), path))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({err})") from None
                except KeyError as err:
                    raise ValueError(
                        f"{path}:{lineno}: field {err} missing for task '{task.name}'"
                    ) from None
    if not items:
        raise ValueError(f"{task.name}: no items in {data_path} (expected *.jsonl files)")
    return items
