"""A BabyLM 2025 leaderboard submission: our official-layout outputs collated into one JSON, as
the official `collate_preds.py --fast` (babylm/evaluation-pipeline-2025) collates them.

The submission (keys in this order): the final model's full predictions, each file loaded as
written, `blimp`, `blimp_supplement`, `ewok`, `entity_tracking`, `wug_adj`, `wug_past`, `comps`,
`reading` (task -> subtask -> {"predictions": [...]}), `aoa` (the AoA surprisal file), `glue`
(the seven fine-tuning tasks' prediction files merged: task -> {"predictions": [...]}); then
`fast_eval_results`: per fast task a list with one entry per checkpoint `chck_*M` of the track
(in the track's order), each subtask -> score: accuracy as a fraction (BLiMP, supplement, EWoK,
entity tracking), Spearman's rho of P(candidate 0) against the human ratio (WUG), and for
reading {"spr", "rt"}, the gain in explained variance of self-paced and eye-tracking times.

Where we differ, on purpose: the official script names one results folder per model
(`<results>/<model>/<revision>/...`); ours come from several runs, so every piece is a file path
(`tree_inputs` gives the official tree's paths). It checks sizes against the 2025 data's counts;
we count the data the evaluation read (equal on the official data, and the demo data works).
Revisions run up to the final model's words (its README: "up until the one you trained"), and
an RL policy fills the revision after its checkpoint, as the AoA score does. Every missing file
and every wrong size is reported at once, by path, instead of the first failed assertion.
"""

import json
from collections import Counter, defaultdict
from pathlib import Path

from storyrl.core.atomic import write_text
from storyrl.core.babylm_spec import GLUE_TASKS, track_revisions
from storyrl.evaluate.official import OfficialError
from storyrl.evaluate.tasks import TASKS, read_items

"""The text tracks; strict-small stops at chck_100M, the others go on to chck_1000M."""

FULL_TASKS = {  # submission key -> (our task, folder under full_eval/)
    "blimp": ("blimp", "blimp_filtered"),
    "blimp_supplement": ("blimp_supplement", "supplement_filtered"),
    "ewok": ("ewok", "ewok_filtered"),
    "entity_tracking": ("entity_tracking", "entity_tracking"),
    "wug_adj": ("wug_adj", "wug_adj_nominalization"),
    "wug_past": ("wug_past", "wug_past_tense"),
    "comps": ("comps", "comps"),
}
FAST_TASKS = {  # fast_eval_results key -> (our task, folder under fast_eval/)
    "blimp": ("blimp", "blimp_fast"),
    "blimp_supplement": ("blimp_supplement", "supplement_fast"),
    "ewok": ("ewok", "ewok_fast"),
    "entity_tracking": ("entity_tracking", "entity_tracking_fast"),
    "wug_adj": ("wug_adj", "wug_adj_nominalization"),
    "wug_past": ("wug_past", "wug_past_tense"),
}
GLUE_ORDER = ("boolq", "mnli", "mrpc", "multirc", "qqp", "rte", "wsc")
"""The order in which the official script merges the GLUE files."""


class SubmissionError(OfficialError):
    """Pieces of the submission are missing or do not fit the evaluation data."""


# --------------------------------------------------------------------------- where files are
def zero_shot_file(main_dir, folder: str, task_dir: str) -> Path:
    """`main_dir`: `<results>/<model stem>/<revision>` of a zero-shot run."""
    return (
        Path(main_dir)
        / "zero_shot"
        / "causal"
        / TASKS[folder].official
        / task_dir
        / "predictions.json"
    )


def reading_file(main_dir) -> Path:
    return Path(main_dir) / "zero_shot" / "causal" / "reading" / "predictions.json"


def glue_file(main_dir, task: str) -> Path:
    return Path(main_dir) / "finetune" / task / "predictions.json"


def aoa_file(main_dir) -> Path:
    return Path(main_dir) / "zero_shot" / "causal" / "AoA_word" / "surprisal.json"


def final_inputs(zero_shot_main, reading_main, glue_mains: dict, aoa_main) -> dict[str, Path]:
    """The final model's files, by submission key (`glue:<task>` for each GLUE task)."""
    out = {key: zero_shot_file(zero_shot_main, task, d) for key, (task, d) in FULL_TASKS.items()}
    out["reading"] = reading_file(reading_main)
    out["aoa"] = aoa_file(aoa_main)
    out |= {f"glue:{t}": glue_file(glue_mains[t], t) for t in GLUE_ORDER}
    return out


def fast_inputs(zero_shot_main, reading_main) -> dict[str, Path]:
    out = {key: zero_shot_file(zero_shot_main, task, d) for key, (task, d) in FAST_TASKS.items()}
    out["reading"] = reading_file(reading_main)
    return out


def tree_inputs(results_dir, name: str, revisions: list[str]):
    """The official layout: everything under `<results_dir>/<name>/<revision>/`."""
    root = Path(results_dir) / name
    main = root / "main"
    return (
        final_inputs(main, main, {t: main for t in GLUE_ORDER}, main),
        {r: fast_inputs(root / r, root / r) for r in revisions},
    )


# --------------------------------------------------------------------------- expected sizes
def data_files(zero_shot_data, official_data) -> dict[str, Path]:
    """The evaluation data the sizes and the fast scores are read from."""
    z, o = Path(zero_shot_data), Path(official_data)
    out = {f"full:{k}": z / "full_eval" / d for k, (_, d) in FULL_TASKS.items()}
    out |= {f"fast:{k}": z / "fast_eval" / d for k, (_, d) in FAST_TASKS.items()}
    out |= {f"glue:{t}": o / "full_eval" / "glue_filtered" / f"{t}.valid.jsonl" for t in GLUE_ORDER}
    out["full:reading"] = o / "full_eval" / "reading" / "reading_data.csv"
    out["fast:reading"] = o / "fast_eval" / "reading" / "reading_data.csv"
    return out


def _uid_counts(task: str, folder: Path) -> dict[str, int]:
    return dict(Counter(item.uid for item in read_items(TASKS[task], folder)))


def _lines(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _csv_rows(path: Path) -> int:
    import pandas as pd

    return len(pd.read_csv(path, dtype={"item": str}))


def _check_sizes(label: str, results: dict, expected: dict[str, int], path: Path) -> list[str]:
    """One line per subtask whose prediction count is not the data's."""
    if not isinstance(results, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("predictions"), list) for v in results.values()
    ):
        return [f'{path}: {label}: not <subtask> -> {{"predictions": [...]}}']
    bad = []
    for key in dict.fromkeys([*results, *expected]):
        got = len(results[key]["predictions"]) if key in results else 0
        want = expected.get(key, 0)
        if got != want:
            bad.append(f"{path}: {label}/{key}: {got} predictions, the data has {want} items")
    return bad


def _load(path: Path, problems: list[str]):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        problems.append(f"{path}: cannot read ({err})")
        return None


# --------------------------------------------------------------------------- fast scores
def _target_scores(results: dict, folder: Path, key: str) -> dict[str, float]:
    """Share of predictions equal (after strip) to the right candidate of the data line at the
    same position, per subtask; the data of subtask S is `<folder>/S.jsonl`."""
    out = {}
    for subtask, res in results.items():
        path = folder / f"{subtask}.jsonl"
        lines = _read_jsonl(path)
        pairs = list(zip(res["predictions"], lines))
        if not pairs:
            raise SubmissionError(f"{path}: no items for subtask {subtask}")
        out[subtask] = sum(_same(p["pred"], d[key]) for p, d in pairs) / len(pairs)
    return out


def _entity_scores(results: dict, folder: Path) -> dict[str, float]:
    """Entity tracking: `regular.jsonl` only, grouped as `regular_<numops>_ops`; option 0 is right."""
    groups = defaultdict(list)
    for d in _read_jsonl(folder / "regular.jsonl"):
        groups[f"regular_{d['numops']}_ops"].append(d)
    out = {}
    for subtask, res in results.items():
        pairs = list(zip(res["predictions"], groups[subtask]))
        if not pairs:
            raise SubmissionError(f"{folder / 'regular.jsonl'}: no items for subtask {subtask}")
        out[subtask] = sum(_same(p["pred"], d["options"][0]) for p, d in pairs) / len(pairs)
    return out


def _wug_scores(results: dict, path: Path) -> dict[str, float]:
    from scipy.stats import spearmanr

    lines = _read_jsonl(path)
    out = {}
    for subtask, res in results.items():
        pairs = list(zip(res["predictions"], lines))
        rho = spearmanr([p["prob"] for p, _ in pairs], [d["ratio"] for _, d in pairs])[0]
        out[subtask] = float(rho)
    return out


def _same(pred, target) -> bool:
    strip = lambda x: x.strip() if isinstance(x, str) else x  # noqa: E731
    return strip(pred) == strip(target)


def _read_jsonl(path: Path) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError as err:
        raise SubmissionError(f"{path}: cannot read the evaluation data ({err.strerror})") from None


def _r2(y, columns) -> float:
    """R-squared of OLS with an intercept (statsmodels' `rsquared`)."""
    import numpy as np

    x = np.column_stack([np.ones(len(y)), *columns])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    return float(1 - resid @ resid / ((y - y.mean()) @ (y - y.mean())))


def _gain(data, dv: str, base: list[str]) -> float:
    """(R2 with `pred` - R2 without) / (1 - R2 without); main effects plus all pairwise
    interactions of `base`, each model on the rows where its own columns are complete."""
    from itertools import combinations

    def fit(names):
        d = data[[dv, *names]].dropna()
        cols = [d[n].to_numpy(float) for n in names]
        cols += [
            d[a].to_numpy(float) * d[b].to_numpy(float)
            for a, b in combinations(names, 2)
            if a in base and b in base
        ]
        return _r2(d[dv].to_numpy(float), cols)

    r0, r1 = fit(base), fit([*base, "pred"])
    return (r1 - r0) / (1 - r0)


def _reading_scores(results: dict, csv_path: Path) -> dict[str, float]:
    import pandas as pd

    data = pd.read_csv(csv_path, dtype={"item": str})
    preds = results["reading"]["predictions"]
    data["pred"] = [p["pred"] for p in preds]
    data["prev_pred"] = [p["prev_pred"] for p in preds]
    base = ["Subtlex_log10", "length", "context_length"]
    eye = [
        _gain(data, dv, base) for dv in ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound")
    ]
    spr = _gain(data, "self_paced_reading_time", base + ["prev_length", "prev_pred"])
    return {"spr": spr, "rt": sum(eye) / len(eye)}


# --------------------------------------------------------------------------- collation
def collate(
    final: dict[str, Path], fast: dict[str, dict[str, Path]], zero_shot_data, official_data
) -> dict:
    """The submission from the final model's files and each revision's fast files (revision
    name -> files, in the track's order). Raises SubmissionError naming every missing file, then
    every file whose sizes do not fit the data."""
    data = data_files(zero_shot_data, official_data)
    needed = [*final.values(), *(p for files in fast.values() for p in files.values())]
    needed += [
        p
        for k, p in data.items()
        if k.startswith(("full:", "glue:")) or (fast and k.startswith("fast:"))
    ]
    missing = [p for p in needed if not p.exists()]
    if missing:
        raise SubmissionError(
            f"the submission lacks {len(missing)} file(s):\n"
            + "\n".join(f"  {p}" for p in dict.fromkeys(missing))
        )

    problems: list[str] = []
    out: dict = {}
    for key, (task, _) in FULL_TASKS.items():
        out[key] = _load(final[key], problems)
        if out[key] is not None:
            problems += _check_sizes(
                key, out[key], _uid_counts(task, data[f"full:{key}"]), final[key]
            )
    out["reading"] = _load(final["reading"], problems)
    if out["reading"] is not None:
        problems += _check_sizes(
            "reading",
            out["reading"],
            {"reading": _csv_rows(data["full:reading"])},
            final["reading"],
        )
    out["aoa"] = _load(final["aoa"], problems)
    if out["aoa"] is not None:
        out["aoa"] = _check_aoa(out["aoa"], list(fast), final["aoa"], problems)
    out["glue"] = {}
    for t in GLUE_ORDER:
        res = _load(final[f"glue:{t}"], problems)
        if res is not None:
            problems += _check_sizes(t, res, {t: _lines(data[f"glue:{t}"])}, final[f"glue:{t}"])
            if isinstance(res, dict):
                out["glue"] |= res

    loaded = {}
    for rev, files in fast.items():
        loaded[rev] = {}
        for key, (task, _) in FAST_TASKS.items():
            res = loaded[rev][key] = _load(files[key], problems)
            if res is not None:
                problems += _check_sizes(
                    key, res, _uid_counts(task, data[f"fast:{key}"]), files[key]
                )
        res = loaded[rev]["reading"] = _load(files["reading"], problems)
        if res is not None:
            problems += _check_sizes(
                "reading", res, {"reading": _csv_rows(data["fast:reading"])}, files["reading"]
            )
    if problems:
        raise SubmissionError(
            f"{len(problems)} problem(s) with the submission's files:\n"
            + "\n".join(f"  {p}" for p in problems)
        )

    scores = {k: [] for k in (*FAST_TASKS, "reading")}
    for res in loaded.values():
        for key in ("blimp", "blimp_supplement"):
            scores[key].append(_target_scores(res[key], data[f"fast:{key}"], "sentence_good"))
        scores["ewok"].append(_target_scores(res["ewok"], data["fast:ewok"], "Target1"))
        scores["entity_tracking"].append(
            _entity_scores(res["entity_tracking"], data["fast:entity_tracking"])
        )
        for key in ("wug_adj", "wug_past"):
            folder = data[f"fast:{key}"]
            scores[key].append(_wug_scores(res[key], folder / f"{folder.name}.jsonl"))
        scores["reading"].append(_reading_scores(res["reading"], data["fast:reading"]))
    out["fast_eval_results"] = scores
    return out


def _check_aoa(aoa, revisions: list[str], path: Path, problems: list[str]):
    """Surprisal for every revision of the submission, as many entries for each; entries of
    other revisions (a run that went further than the final model) are left out."""
    entries = aoa.get("results") if isinstance(aoa, dict) else None
    if not isinstance(entries, list):
        problems.append(f"{path}: not an AoA surprisal file (no 'results' list)")
        return aoa
    per_step = Counter(e.get("step") for e in entries if isinstance(e, dict))
    lack = [r for r in revisions if r not in per_step]
    if lack:
        problems.append(f"{path}: no surprisal for revision(s) {', '.join(lack)}")
    sizes = {per_step[r] for r in revisions if r in per_step}
    if len(sizes) > 1:
        problems.append(
            f"{path}: revisions have different numbers of entries "
            f"({', '.join(f'{r}: {per_step[r]}' for r in revisions if r in per_step)})"
        )
    return {**aoa, "results": [e for e in entries if e.get("step") in revisions]}


def write_submission(submission: dict, path) -> Path:
    """As the official `json.dump` writes it (default separators; NaN for an undefined rho)."""
    write_text(path, json.dumps(submission))
    return Path(path)


# --------------------------------------------------------------------------- CLI
def cli_submission(args):
    """`storyrl submission`: collate one final model's outputs into the submission JSON."""
    from storyrl.evaluate.zero_shot import model_results_dir

    names = [name for name, _ in track_revisions(args.track)]
    revs = {r[0]: r[1:] for r in args.revision or []}
    unknown = [r for r in [*revs, args.last] if r is not None and r not in names]
    if unknown:
        raise SubmissionError(
            f"{unknown}: not revisions of the {args.track} track ({', '.join(names)})"
        )
    if not (args.tree or revs):
        raise SubmissionError(
            f"no --revision: a submission reports the {args.track} track's "
            f"checkpoints from {names[0]} up to the final model"
        )
    if args.tree:
        order = names[: names.index(args.last) + 1] if args.last else names
        final, fast = tree_inputs(args.tree, Path(args.final).stem, order)
    else:
        order = [n for n in names if n in revs]  # the track's order, whatever the flags' order
        main = lambda d: model_results_dir(d, args.final)  # noqa: E731
        glue = dict(args.glue or [])
        lack = [t for t in GLUE_TASKS if t not in glue]
        if lack or not (args.zero_shot and args.reading and args.aoa):
            raise SubmissionError(
                "without --tree, give --zero-shot, --reading, --aoa and "
                f"--glue for every GLUE task (lacking: {lack})"
            )
        final = final_inputs(
            main(args.zero_shot),
            main(args.reading),
            {t: main(d) for t, d in glue.items()},
            model_results_dir(args.aoa[0], args.aoa[1]),
        )
        fast = {
            r: fast_inputs(
                model_results_dir(revs[r][1], revs[r][0]), model_results_dir(revs[r][2], revs[r][0])
            )
            for r in order
        }
    submission = collate(
        final, fast, args.zero_shot_data, args.official_data or args.zero_shot_data
    )
    print(
        f"wrote {write_submission(submission, args.output)}: full predictions and fast "
        f"scores of {len(order)} revision(s) ({', '.join(order)})"
    )
