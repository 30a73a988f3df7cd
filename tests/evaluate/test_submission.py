"""The BabyLM 2025 leaderboard submission (`storyrl submission`, storyrl/evaluate/submission.py).

Real zero-shot outputs of tiny checkpoints (our `run_zero_shot`, official layout) plus GLUE,
reading and AoA files in the official pipeline's documented formats (written here: the pipeline
itself is not installed), collated through the CLI; every field of the JSON is checked against
the format of the official `collate_preds.py` and against numbers computed another way. With a
checkout of the official pipeline and its interpreter (STORYRL_BABYLM_PIPELINE and
STORYRL_BABYLM_PYTHON, as tests/evaluate/test_official_pipeline.py), its own collate_preds.py runs
on the same files and must give the same JSON.
"""

import csv
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalfixtures import blimp_row, build_model, comps_row, et_row, ewok_row, write_jsonl, wug_row
from helpers import ROOT, snakemake
from storyrl.config import ZeroShotConfig
from storyrl.evaluate.zero_shot import run_zero_shot

GLUE = ("boolq", "mnli", "mrpc", "multirc", "qqp", "rte", "wsc")
READING_DV = ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound", "self_paced_reading_time")
REVISIONS = {"chck_1M": "ckpt-1M", "chck_2M": "ckpt-2M", "chck_3M": "ckpt-3M"}
FINAL = "ckpt-3M"
TOP_KEYS = [
    "blimp",
    "blimp_supplement",
    "ewok",
    "entity_tracking",
    "wug_adj",
    "wug_past",
    "comps",
    "reading",
    "aoa",
    "glue",
    "fast_eval_results",
]
FAST_KEYS = [
    "blimp",
    "blimp_supplement",
    "ewok",
    "entity_tracking",
    "wug_adj",
    "wug_past",
    "reading",
]


# --------------------------------------------------------------------------- data and outputs
def sentences(prefix, n):
    return [(f"{prefix} the cat sleeps {i} .", f"{prefix} the cat sleep {i} .") for i in range(n)]


def write_data(root: Path) -> dict:
    """An evaluation_data/ in the official shapes: one file per BLiMP UID and EWoK domain (the
    fast scores open `<subtask>.jsonl`), the same count per subtask in the fast sets."""
    full, fast = root / "full_eval", root / "fast_eval"
    for folder, sizes in (
        ("blimp_filtered", {"sv_agreement": 3, "det_noun": 2}),
        ("blimp_fast", {"sv_agreement": 2, "det_noun": 2}),
    ):
        base = full if "filtered" in folder else fast
        for uid, n in sizes.items():
            write_jsonl(
                base / folder / f"{uid}.jsonl", [blimp_row(g, b, uid) for g, b in sentences(uid, n)]
            )
    for folder, sizes in (
        ("supplement_filtered", {"qa_congruence_easy": 2, "turn_taking": 3}),
        ("supplement_fast", {"qa_congruence_easy": 2, "turn_taking": 2}),
    ):
        base = full if "filtered" in folder else fast
        for stem, n in sizes.items():
            write_jsonl(
                base / folder / f"{stem}.jsonl",
                [{"sentence_good": g, "sentence_bad": b} for g, b in sentences(stem, n)],
            )
    for folder, sizes in (
        ("ewok_filtered", {"physics": 2, "biology": 3}),
        ("ewok_fast", {"physics": 2, "biology": 2}),
    ):
        base = full if "filtered" in folder else fast
        for domain, n in sizes.items():
            write_jsonl(
                base / folder / f"{domain}.jsonl",
                [
                    ewok_row(f"The fox {i} has fur.", "The fox is soft.", "The fox is wet.", domain)
                    for i in range(n)
                ],
            )

    def box(i, k):
        return et_row(
            f"Box {i} contains the key. Box {i} contains",
            [" the key.", " the apple.", " nothing."],
            k,
        )

    write_jsonl(
        full / "entity_tracking" / "regular.jsonl",
        [box(i, k) for i, k in enumerate([0, 0, 1, 1, 1])],
    )
    write_jsonl(full / "entity_tracking" / "ambiref.jsonl", [box(7, 0), box(8, 0)])
    write_jsonl(
        fast / "entity_tracking_fast" / "regular.jsonl",
        [box(i, k) for i, k in enumerate([0, 0, 1, 1])],
    )
    write_jsonl(
        full / "comps" / "comps_base.jsonl",
        [
            comps_row("A robin", "A stone", "can fly."),
            comps_row("The fox", "The box", "has fur."),
            comps_row("A bird", "A key", "can sing."),
        ],
    )
    rng = random.Random(0)
    for base in (full, fast):
        write_jsonl(
            base / "wug_adj_nominalization" / "wug_adj_nominalization.jsonl",
            [
                wug_row([f"the wug{i}ity .", f"the wug{i}ness ."], round(rng.random(), 2))
                for i in range(5)
            ],
        )
        write_jsonl(
            base / "wug_past_tense" / "wug_past_tense.jsonl",
            [
                wug_row([f"he blick{i}ed .", f"he blick{i} ."], round(rng.random(), 2))
                for i in range(4)
            ],
        )
    for t, task in enumerate(GLUE):
        write_jsonl(
            full / "glue_filtered" / f"{task}.valid.jsonl",
            [{"text": f"{task} {i}", "label": i % 2} for i in range(3 + t)],
        )
    rows = []
    for i in range(40):
        first = i % 5 == 0
        row = {
            "item": f"the cat {i}",
            "word": "cat",
            "Subtlex_log10": rng.uniform(1, 5),
            "length": rng.randint(2, 9),
            "context_length": rng.randint(1, 12),
            "prev_length": "" if first else rng.randint(2, 9),
        }
        row |= {
            dv: ("" if dv == "RTgopast" and i == 3 else rng.gauss(250, 30)) for dv in READING_DV
        }
        rows.append(row)
    for base in (full, fast):
        (base / "reading").mkdir(parents=True)
        with open(base / "reading" / "reading_data.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return {"reading_rows": len(rows)}


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def reading_predictions(n: int, seed: int) -> dict:
    """As the pipeline's reading/run.py writes them: surprisal of the word and of the previous
    one (NaN where the item has none)."""
    rng = random.Random(seed)
    return {
        "reading": {
            "predictions": [
                {
                    "id": i,
                    "pred": rng.uniform(2, 12),
                    "prev_pred": float("nan") if i % 5 == 0 else rng.uniform(2, 12),
                }
                for i in range(n)
            ]
        }
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three checkpoints (1M, 2M, 3M words; 3M is the final model) and every output the
    workflow hands to `storyrl submission`, each run in its own folder as the workflow has them."""
    tmp = tmp_path_factory.mktemp("submission")
    data = tmp / "evaluation_data"
    sizes = write_data(data)
    out = tmp / "out"
    models, rows = {}, {}
    for k, name in enumerate(REVISIONS.values()):
        models[name] = tmp / "pretrain" / name
        build_model(models[name], seed=k)
        rows[name] = []
        for variant in ("fast", "full") if name == FINAL else ("fast",):
            cfg = ZeroShotConfig(variant=variant, device="cpu", batch_size=8)
            rows[name] += run_zero_shot(models[name], data, out / "zs" / name, cfg, model_id=name)
        write_json(
            out
            / "reading_fast"
            / name
            / name
            / "main"
            / "zero_shot"
            / "causal"
            / "reading"
            / "predictions.json",
            reading_predictions(sizes["reading_rows"], k),
        )
    final = out / "reading" / FINAL / FINAL / "main" / "zero_shot" / "causal" / "reading"
    write_json(final / "predictions.json", reading_predictions(sizes["reading_rows"], 9))
    for t, task in enumerate(GLUE):  # the fine-tuning's predictions.json: label per valid line
        write_json(
            out / "glue" / task / FINAL / "main" / "finetune" / task / "predictions.json",
            {
                task: {
                    "predictions": [
                        {"id": f"{task}_{i}", "pred": (i * 7) % 2} for i in range(3 + t)
                    ]
                }
            },
        )
    aoa = [
        {"step": rev, "target_word": w, "context": f"the {w}", "surprisal": 5.0 + i + j}
        for i, rev in enumerate(REVISIONS)
        for j, w in enumerate(("cat", "dog", "key"))
    ]
    write_json(
        out / "aoa" / "demo" / "main" / "zero_shot" / "causal" / "AoA_word" / "surprisal.json",
        {"results": aoa},
    )
    return dict(tmp=tmp, data=data, out=out, models=models, rows=rows)


def cli(*args, check=True):
    done = subprocess.run(
        [sys.executable, "-m", "storyrl.cli", "submission", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if check:
        assert done.returncode == 0, done.stderr[-4000:]
    return done


def workflow_args(run, out=None):
    """The flags the workflow's submission rule gives (one output folder per run)."""
    out = out or run["out"]
    args = [
        "--final",
        run["models"][FINAL],
        "--track",
        "strict-small",
        "--zero-shot-data",
        run["data"],
        "--official-data",
        run["data"],
        "--zero-shot",
        out / "zs" / FINAL,
        "--reading",
        out / "reading" / FINAL,
        "--aoa",
        out / "aoa",
        "storyrl/demo",
    ]
    for task in GLUE:
        args += ["--glue", task, out / "glue" / task]
    for rev, name in REVISIONS.items():
        args += [
            "--revision",
            rev,
            run["models"][name],
            out / "zs" / name,
            out / "reading_fast" / name,
        ]
    return args


@pytest.fixture(scope="module")
def submission(run):
    path = run["tmp"] / "submission.json"
    cli(*workflow_args(run), "--output", path)
    return json.loads(path.read_text())


def load(path):
    return json.loads(Path(path).read_text())


# --------------------------------------------------------------------------- the format
def test_keys_are_the_official_benchmarks_in_order(submission):
    assert list(submission) == TOP_KEYS
    assert list(submission["glue"]) == list(GLUE)
    assert list(submission["fast_eval_results"]) == FAST_KEYS


def test_full_zero_shot_predictions_are_the_final_models_files(run, submission):
    zs = run["out"] / "zs" / FINAL / FINAL / "main" / "zero_shot" / "causal"
    files = {
        "blimp": "blimp/blimp_filtered",
        "blimp_supplement": "blimp/supplement_filtered",
        "ewok": "ewok/ewok_filtered",
        "entity_tracking": "entity_tracking/entity_tracking",
        "wug_adj": "wug_adj/wug_adj_nominalization",
        "wug_past": "wug_past/wug_past_tense",
        "comps": "comps/comps",
    }
    expected = {
        "blimp": {"sv_agreement": 3, "det_noun": 2},
        "blimp_supplement": {"qa_congruence_easy": 2, "turn_taking": 3},
        "ewok": {"physics": 2, "biology": 3},
        "entity_tracking": {"regular_0_ops": 2, "regular_1_ops": 3, "ambiref_0_ops": 2},
        "wug_adj": {"wug_adj": 5},
        "wug_past": {"wug_past": 4},
        "comps": {"base": 3},
    }
    for key, rel in files.items():
        assert submission[key] == load(zs / rel / "predictions.json"), key
        assert {uid: len(v["predictions"]) for uid, v in submission[key].items()} == expected[key]
        for uid, v in submission[key].items():
            assert list(v) == ["predictions"]
            for k, p in enumerate(v["predictions"]):
                assert p["id"] == f"{uid}_{k}" and isinstance(p["pred"], str) and p["pred"]
                if key.startswith("wug"):
                    assert set(p) == {"id", "pred", "prob"} and 0 <= p["prob"] <= 1
                else:
                    assert set(p) == {"id", "pred"}


def test_glue_reading_and_aoa_are_the_pipelines_files(run, submission):
    out = run["out"]
    for t, task in enumerate(GLUE):
        preds = submission["glue"][task]["predictions"]
        assert preds == [{"id": f"{task}_{i}", "pred": (i * 7) % 2} for i in range(3 + t)]
    reading = load(
        out
        / "reading"
        / FINAL
        / FINAL
        / "main"
        / "zero_shot"
        / "causal"
        / "reading"
        / "predictions.json"
    )
    assert json.dumps(submission["reading"]) == json.dumps(reading)  # NaN prev_pred kept
    assert (
        list(submission["reading"]) == ["reading"] and len(reading["reading"]["predictions"]) == 40
    )
    aoa = load(
        out / "aoa" / "demo" / "main" / "zero_shot" / "causal" / "AoA_word" / "surprisal.json"
    )
    assert submission["aoa"] == aoa and {e["step"] for e in aoa["results"]} == set(REVISIONS)


def partial_r2(data, dv, base, pred):
    """The gain in explained variance by another route: the squared partial correlation of the
    times and the surprisal once both are regressed on the baseline terms (Frisch-Waugh)."""
    from itertools import combinations

    cols = [*base, pred]
    ok = ~np.isnan(np.column_stack([data[c] for c in [dv, *cols]])).any(1)
    d = {c: np.asarray(data[c], float)[ok] for c in [dv, *cols]}
    x = np.column_stack(
        [np.ones(ok.sum()), *(d[c] for c in base), *(d[a] * d[b] for a, b in combinations(base, 2))]
    )

    def resid(v):
        return v - x @ np.linalg.pinv(x) @ v

    return float(np.corrcoef(resid(d[dv]), resid(d[pred]))[0, 1] ** 2)


def test_fast_scores_of_every_revision(run, submission):
    import pandas as pd

    fast = submission["fast_eval_results"]
    assert all(len(fast[k]) == len(REVISIONS) for k in FAST_KEYS)
    data = pd.read_csv(run["data"] / "fast_eval" / "reading" / "reading_data.csv")
    for i, name in enumerate(REVISIONS.values()):
        rows = [r for r in run["rows"][name] if r["task"].endswith("_fast")]
        acc = {
            task: {
                r["subtask"]: r["value"] / 100
                for r in rows
                if r["task"] == f"{task}_fast" and r["metric"] == "accuracy" and r["subtask"]
            }
            for task in ("blimp", "blimp_supplement", "ewok", "entity_tracking")
        }
        for key in ("blimp", "blimp_supplement", "ewok"):
            assert fast[key][i] == pytest.approx(acc[key]), (name, key)
        et = {k: v for k, v in acc["entity_tracking"].items() if k.endswith("_ops")}
        assert list(et) == ["regular_0_ops", "regular_1_ops"]
        assert fast["entity_tracking"][i] == pytest.approx(et)
        for key in ("wug_adj", "wug_past"):
            rho = next(r["value"] for r in rows if r["task"] == f"{key}_fast")
            assert fast[key][i] == {key: pytest.approx(rho)}
        preds = load(
            run["out"]
            / "reading_fast"
            / name
            / name
            / "main"
            / "zero_shot"
            / "causal"
            / "reading"
            / "predictions.json"
        )["reading"]["predictions"]
        d = data.assign(pred=[p["pred"] for p in preds], prev_pred=[p["prev_pred"] for p in preds])
        base = ["Subtlex_log10", "length", "context_length"]
        rt = np.mean([partial_r2(d, dv, base, "pred") for dv in READING_DV[:4]])
        spr = partial_r2(d, "self_paced_reading_time", base + ["prev_length", "prev_pred"], "pred")
        assert list(fast["reading"][i]) == ["spr", "rt"]
        assert fast["reading"][i] == {
            "spr": pytest.approx(spr, abs=1e-9),
            "rt": pytest.approx(rt, abs=1e-9),
        }


# --------------------------------------------------------------------------- the official tree
def official_tree(run, root: Path) -> Path:
    """The same files, linked into the official layout `<results>/<model>/<revision>/...`."""
    out, tree = run["out"], root / FINAL

    def link(src: Path, dest: Path):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(src.resolve())

    main = tree / "main"
    zs = out / "zs" / FINAL / FINAL / "main" / "zero_shot" / "causal"
    for task in ("blimp", "ewok", "entity_tracking", "wug_adj", "wug_past", "comps"):
        link(zs / task, main / "zero_shot" / "causal" / task)
    link(
        out / "reading" / FINAL / FINAL / "main" / "zero_shot" / "causal" / "reading",
        main / "zero_shot" / "causal" / "reading",
    )
    link(
        out / "aoa" / "demo" / "main" / "zero_shot" / "causal" / "AoA_word",
        main / "zero_shot" / "causal" / "AoA_word",
    )
    for task in GLUE:
        link(out / "glue" / task / FINAL / "main" / "finetune" / task, main / "finetune" / task)
    for rev, name in REVISIONS.items():
        for task in ("blimp", "ewok", "entity_tracking", "wug_adj", "wug_past"):
            link(
                out / "zs" / name / name / "main" / "zero_shot" / "causal" / task,
                tree / rev / "zero_shot" / "causal" / task,
            )
        link(
            out / "reading_fast" / name / name / "main" / "zero_shot" / "causal" / "reading",
            tree / rev / "zero_shot" / "causal" / "reading",
        )
    return root


def test_an_official_tree_gives_the_same_submission(run, submission, tmp_path):
    tree = official_tree(run, tmp_path / "results")
    cli(
        "--tree",
        tree,
        "--final",
        FINAL,
        "--track",
        "strict-small",
        "--last",
        "chck_3M",
        "--zero-shot-data",
        run["data"],
        "--output",
        tmp_path / "s.json",
    )
    assert json.dumps(load(tmp_path / "s.json")) == json.dumps(submission)


PIPELINE = os.environ.get("STORYRL_BABYLM_PIPELINE")
PYTHON = os.environ.get("STORYRL_BABYLM_PYTHON")

# The official script with its constants set to this data: the revisions trained (its README:
# edit lines 16-17 for another scheme or a shorter run) and the sizes of these sets.
OFFICIAL_COLLATE = """import json, sys
import evaluation_pipeline.collate_preds as c
sizes = json.loads(sys.argv[1])
c.STRICT_SMALL_FAST_REVISIONS[:] = sizes.pop("revisions")
c.AOA_SIZE = sizes.pop("aoa")
for key, value in sizes.pop("fast").items():
    c.FAST_SIZES[key] = value
for key, value in sizes.items():
    c.FULL_SIZES[key] = value
sys.argv = ["collate_preds"] + sys.argv[2:]
c.main()
"""


def same(a, b, where="$"):
    """Equal JSON: same keys in the same order, floats to 1e-9 (statsmodels vs our OLS)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12), (
            where
        )
    else:
        assert a == b and type(a) is type(b), where


@pytest.mark.skipif(
    not (PIPELINE and PYTHON),
    reason="set STORYRL_BABYLM_PIPELINE and "
    "STORYRL_BABYLM_PYTHON to run the official collate_preds.py",
)
def test_the_official_collate_preds_gives_the_same_json(run, submission, tmp_path):
    tree = official_tree(run, tmp_path / "results")
    sizes = {
        "revisions": list(REVISIONS),
        "aoa": 3,
        "blimp": {"sv_agreement": 3, "det_noun": 2},
        "blimp_supplement": {"qa_congruence_easy": 2, "turn_taking": 3},
        "ewok": {"physics": 2, "biology": 3},
        "entity_tracking": {"regular_0_ops": 2, "regular_1_ops": 3, "ambiref_0_ops": 2},
        "comps": {"base": 3},
        "wug_adj": 5,
        "wug_past": 4,
        "reading": 40,
        **{task: 3 + t for t, task in enumerate(GLUE)},
        "fast": {
            "blimp": 2,
            "blimp_supplement": 2,
            "ewok": 2,
            "wug_adj": 5,
            "wug_past": 4,
            "entity_tracking": {"regular_0_ops": 2, "regular_1_ops": 2},
            "reading": 40,
        },
    }
    done = subprocess.run(
        [
            PYTHON,
            "-c",
            OFFICIAL_COLLATE,
            json.dumps(sizes),
            "--model_path_or_name",
            FINAL,
            "--backend",
            "causal",
            "--fast",
            "--results_dir",
            str(tree),
            "--track",
            "strict-small",
            "--fast_eval_dir",
            str(run["data"] / "fast_eval"),
        ],
        cwd=PIPELINE,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    official = json.loads((tree / FINAL / "all_full_preds_and_fast_scores_causal.json").read_text())
    same(official, submission)


# --------------------------------------------------------------------------- errors
def test_every_missing_file_is_named_at_once(run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    gone = [
        out / "glue" / "rte" / FINAL / "main" / "finetune" / "rte" / "predictions.json",
        out
        / "zs"
        / "ckpt-2M"
        / "ckpt-2M"
        / "main"
        / "zero_shot"
        / "causal"
        / "blimp"
        / "blimp_fast"
        / "predictions.json",
        out
        / "reading_fast"
        / "ckpt-1M"
        / "ckpt-1M"
        / "main"
        / "zero_shot"
        / "causal"
        / "reading"
        / "predictions.json",
        out / "aoa" / "demo" / "main" / "zero_shot" / "causal" / "AoA_word" / "surprisal.json",
    ]
    for path in gone:
        path.unlink()
    done = cli(*workflow_args(run, out), "--output", tmp_path / "s.json", check=False)
    assert done.returncode == 2 and not (tmp_path / "s.json").exists()
    assert "lacks 4 file(s)" in done.stderr
    for path in gone:
        assert str(path) in done.stderr


def test_a_wrong_number_of_predictions_names_file_and_subtask(run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    glue = out / "glue" / "wsc" / FINAL / "main" / "finetune" / "wsc" / "predictions.json"
    obj = load(glue)
    obj["wsc"]["predictions"].pop()
    glue.write_text(json.dumps(obj))
    ewok = (
        out
        / "zs"
        / "ckpt-1M"
        / "ckpt-1M"
        / "main"
        / "zero_shot"
        / "causal"
        / "ewok"
        / "ewok_fast"
        / "predictions.json"
    )
    obj = load(ewok)
    del obj["biology"]
    ewok.write_text(json.dumps(obj))
    done = cli(*workflow_args(run, out), "--output", tmp_path / "s.json", check=False)
    assert done.returncode == 2 and not (tmp_path / "s.json").exists()
    assert f"{glue}: wsc/wsc: 8 predictions, the data has 9 items" in done.stderr
    assert f"{ewok}: ewok/biology: 0 predictions, the data has 2 items" in done.stderr


# --------------------------------------------------------------------------- revisions, workflow
STRICT_SMALL = [f"chck_{i}M" for i in range(1, 10)] + [f"chck_{10 * i}M" for i in range(1, 11)]
OTHER = STRICT_SMALL[:-1] + [f"chck_{100 * i}M" for i in range(1, 11)]  # collate_preds.py, l. 16-17


def test_revisions_are_the_tracks_checkpoints_up_to_the_final_model():
    from storyrl.core.babylm_spec import revisions_for

    def names(revs):
        return [n for n, _ in revs]

    assert names(revisions_for("strict-small", 10**8)) == STRICT_SMALL
    assert names(revisions_for("strict", 10**9)) == OTHER
    assert names(revisions_for("strict", 9 * 10**8)) == OTHER[:-1]
    # An RL policy from 900M: the checkpoints up to 900M, then itself in chck_1000M.
    assert revisions_for("interaction", 9 * 10**8, rl_start=9 * 10**8)[-2:] == [
        ("chck_900M", 9 * 10**8),
        ("chck_1000M", None),
    ]


def test_the_fast_reading_runs_on_the_fast_set(tmp_path):
    from storyrl.config import OfficialConfig
    from storyrl.evaluate.official import reading_command

    (tmp_path / "evaluation_pipeline").mkdir()
    cfg = OfficialConfig(path=str(tmp_path))

    def data(cmd):
        return cmd[cmd.index("--data_path") + 1]

    assert data(reading_command(cfg, tmp_path, tmp_path, "fast")).endswith(
        "evaluation_data/fast_eval/reading/reading_data.csv"
    )
    assert "/full_eval/" in data(reading_command(cfg, tmp_path, tmp_path))


def test_a_config_without_the_official_pipeline_says_what_the_submission_lacks(tmp_path):
    out = snakemake(tmp_path, "-n", "results/submission/demo-pre-60K.json", check=False)
    text = out.stdout + out.stderr
    assert (
        out.returncode != 0
        and "results/submission/demo-pre-60K.json: this config does not make" in text
    )
    # 60K words: no checkpoint of the track yet (chck_1M is the first), and no pipeline
    assert "a checkpoint of the strict-small track" in text and "official.path" in text
