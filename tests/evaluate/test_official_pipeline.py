"""A real run of the official BabyLM pipeline (`babylm/evaluation-pipeline-2025`) on tiny
checkpoints: GLUE fine-tuning, reading and AoA through `storyrl eval official`, and the
eval_scores rows read back. Opt-in, as it needs a checkout and an environment with its
requirements.txt (transformers 4.51): set STORYRL_BABYLM_PIPELINE (the folder holding
`evaluation_pipeline/`) and STORYRL_BABYLM_PYTHON (that environment's interpreter)."""

import csv
import json
import math
import os
import random
import subprocess
import sys

import pandas as pd
import pytest
import torch

from evalfixtures import build_model
from helpers import ROOT
from storyrl.core.babylm_spec import aoa_steps

PIPELINE = os.environ.get("STORYRL_BABYLM_PIPELINE")
PYTHON = os.environ.get("STORYRL_BABYLM_PYTHON")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PIPELINE and PYTHON),
        reason="set STORYRL_BABYLM_PIPELINE and STORYRL_BABYLM_PYTHON to run the official pipeline",
    ),
]

WORDS = "the cat sleeps dog runs Box key apple bird can fly fox has fur and a tail".split()
READING_VARS = [
    "RTfirstfix",
    "RTfirstpass",
    "RTgopast",
    "RTrightbound",
    "self_paced_reading_time",
    "ELAN",
    "LAN",
    "N400",
    "P600",
    "EPNP",
    "PNP",
]
AOA_WORDS = ["cat", "dog", "key", "apple"]  # plus "fox" (too few contexts) and "a" (one letter)


def sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_data(root):
    """glue_filtered/, reading/ and cdi_childes/ under <root>/full_eval, in the official formats."""
    rng = random.Random(0)
    full = root / "full_eval"
    make = {
        "boolq": lambda: {"question": sentence(rng, 5) + " ?", "passage": sentence(rng, 12)},
        "rte": lambda: {"sentence1": sentence(rng, 10), "sentence2": sentence(rng, 6)},
    }
    (full / "glue_filtered").mkdir(parents=True)
    for task, row in make.items():
        for split, n in (("train", 32), ("valid", 16)):
            lines = [json.dumps({**row(), "label": i % 2, "idx": i}) for i in range(n)]
            (full / "glue_filtered" / f"{task}.{split}.jsonl").write_text("\n".join(lines) + "\n")
    rows, prev = [], None
    for i in range(60):
        item, word = sentence(rng, rng.randint(2, 8)), rng.choice(["key", "Box", *WORDS])
        first = i % 6 == 0
        row = {
            "item": item,
            "word": word,
            "prev_item": "" if first else prev[0],
            "prev_word": "" if first else prev[1],
        }
        row.update({v: round(rng.gauss(250 if v[0] in "Rs" else 0, 30), 3) for v in READING_VARS})
        row.update(
            Subtlex_log10=round(rng.uniform(1, 5), 3),
            length=len(word),
            context_length=len(item.split()),
            prev_length="" if first else len(prev[1]),
        )
        rows.append(row)
        prev = (item, word)
    (full / "reading").mkdir()
    with open(full / "reading" / "reading_data.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cdi = {w: [{"context": sentence(rng, 6)} for _ in range(3)] for w in AOA_WORDS}
    cdi["fox"] = [{"context": "the fox"}]
    cdi["a"] = [{"context": sentence(rng, 4)} for _ in range(3)]
    (full / "cdi_childes").mkdir()
    (full / "cdi_childes" / "cdi_childes.json").write_text(json.dumps(cdi))
    (full / "aoa").mkdir()  # the children's CDI proportions by age in months
    with open(full / "aoa" / "cdi_human.csv", "w", newline="") as f:
        f.write("word," + ",".join(str(a) for a in range(16, 31)) + "\n")
        for i, w in enumerate(AOA_WORDS):
            f.write(
                w
                + ","
                + ",".join(f"{1 / (1 + math.exp(18 + 3 * i - a)):.4f}" for a in range(16, 31))
                + "\n"
            )


def cli(*args):
    out = subprocess.run(
        [sys.executable, "-m", "storyrl.cli", "eval", "official", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, f"{args[:1]}:\n{out.stdout[-3000:]}\n{out.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Data, 19 milestone checkpoints (ckpt-1M .. ckpt-100M) and the four commands."""
    tmp = tmp_path_factory.mktemp("official")
    data = tmp / "evaluation_data"
    write_data(data)
    ckpts = {words: tmp / f"ckpt-{words // 10**6}M" for _, words in aoa_steps("strict-small")}
    for i, folder in enumerate(ckpts.values()):
        build_model(folder, seed=i)
    tok_configs = {f: (f / "tokenizer_config.json").read_text() for f in ckpts.values()}
    section = dict(
        path=PIPELINE,
        python=PYTHON,
        data_path=str(data),
        glue=["boolq", "rte"],
        epochs=1,
        wsc_epochs=1,
        sequence_length=128,
        aoa=True,
        aoa_min_context=2,
    )
    sec = ["--section", json.dumps(section)]
    model, out = ckpts[10**8], tmp / "out"
    for task in ("boolq", "rte"):
        cli(
            "glue",
            *sec,
            "--model",
            str(model),
            "--task",
            task,
            "--output-dir",
            str(out / "glue" / task),
        )
    cli("reading", *sec, "--model", str(model), "--output-dir", str(out / "reading"))
    cli(
        "collect",
        *sec,
        "--model",
        str(model),
        "--glue-dir",
        str(out / "glue"),
        "--reading-dir",
        str(out / "reading"),
        "--model-id",
        "m",
        "--pretrain-words",
        "100M",
        "--parquet",
        str(tmp / "m.parquet"),
    )
    milestones = [
        a
        for w, f in ckpts.items()
        for a in ("--checkpoint", str(w), f"demo-pre-{f.name[5:]}", str(f))
    ]
    cli(
        "aoa",
        *sec,
        "--run-id",
        "demo",
        *milestones,
        "--output-dir",
        str(out / "aoa"),
        "--parquet",
        str(tmp / "aoa.parquet"),
    )
    # The AoA score before and after RL: a "policy" from 90M fills the next revision, chck_100M.
    policy = tmp / "policy"
    build_model(policy, seed=99)
    (policy / "storyrl_rl.json").write_text(json.dumps({"rl_words": 1000}))
    cli(
        "aoa",
        *sec,
        "--run-id",
        "demo-rl",
        *milestones[:-4],
        "--policy",
        "demo-rl-final",
        str(policy),
        "--output-dir",
        str(out / "aoa_rl"),
        "--parquet",
        str(tmp / "aoa_rl.parquet"),
    )
    # The hand-off reads the checkpoints; it never writes into them.
    assert all((f / "tokenizer_config.json").read_text() == t for f, t in tok_configs.items())
    return dict(tmp=tmp, out=out, model=model, ckpts=ckpts)


def test_glue_rows_are_the_pipeline_results(run):
    rows = pd.read_parquet(run["tmp"] / "m.parquet")
    glue = rows[rows.task == "glue"]
    results = {}
    for task in ("boolq", "rte"):
        path = run["out"] / "glue" / task / "ckpt-100M" / "main" / "finetune" / task / "results.txt"
        results[task] = dict(line.split(": ") for line in path.read_text().splitlines())
        for metric, value in results[task].items():
            got = glue[(glue.subtask == task) & (glue.metric == metric)].value.item()
            assert got == pytest.approx(float(value) * (1 if metric == "mcc" else 100))
    head = glue[glue.subtask == ""]
    assert head.metric.item() == "accuracy" and head.n_items.item() == 32
    mean = sum(100 * float(r["accuracy"]) for r in results.values()) / 2
    assert head.value.item() == pytest.approx(mean)
    acc_f1 = glue[glue.metric.isin(["accuracy", "f1"])].value
    assert acc_f1.between(0, 100).all() and glue[glue.metric == "mcc"].value.between(-1, 1).all()
    assert (rows.model_id == "m").all() and (rows.pretrain_words == 10**8).all()


def test_reading_rows_and_surprisal_match_ours(run):
    rows = pd.read_parquet(run["tmp"] / "m.parquet").set_index("task")
    report = (
        run["out"]
        / "reading"
        / "ckpt-100M"
        / "main"
        / "zero_shot"
        / "causal"
        / "reading"
        / "report.txt"
    ).read_text()
    scores = {k.strip(): float(v) for k, v in (line.split(":") for line in report.splitlines())}
    assert rows.loc["reading_eye_tracking", "value"] == scores["EYE TRACKING SCORE"]
    assert rows.loc["reading_self_paced", "value"] == scores["SELF-PACED READING SCORE"]
    reading = rows.loc[["reading_eye_tracking", "reading_self_paced"]]
    assert (reading.metric == "delta_r2_pct").all() and reading.n_items.isna().all()
    # The pipeline's word surprisal equals this environment's, where the word is one token:
    # its tokenizer must feed GPT-2 the same inputs as ours (no token_type_ids).
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run["model"]).eval()
    tok = AutoTokenizer.from_pretrained(run["model"])
    pred = (
        (
            run["out"]
            / "reading"
            / "ckpt-100M"
            / "main"
            / "zero_shot"
            / "causal"
            / "reading"
            / "prediction.jsonl"
        )
        .read_text()
        .splitlines()
    )
    checked = 0
    for line in map(json.loads, pred):
        target = tok(line["Word"], add_special_tokens=False).input_ids
        if len(target) == 1:
            with torch.no_grad():
                logits = model(**tok(line["Sentence"], return_tensors="pt")).logits[0, -1]
            ours = -logits.log_softmax(-1)[target[0]].item()
            assert line["Logprob"] == pytest.approx(ours, abs=1e-4)
            checked += 1
    assert checked >= 5


def test_aoa_rows_for_every_milestone(run):
    rows = pd.read_parquet(run["tmp"] / "aoa.parquet")
    ids = {f"demo-pre-{f.name[5:]}": w for w, f in run["ckpts"].items()}
    assert len(ids) == 19 and set(rows.model_id) == set(ids)
    assert (rows.task == "aoa_surprisal").all() and (rows.metric == "surprisal").all()
    for model_id, g in rows.groupby("model_id"):
        assert (g.pretrain_words == ids[model_id]).all() and (g.rl_words == 0).all()
        assert set(g.subtask) == {"", *AOA_WORDS}
        head = g[g.subtask == ""]
        assert head.n_items.item() == 3 * len(AOA_WORDS)
        per_word = g[g.subtask != ""].value
        assert head.value.item() == pytest.approx(per_word.mean())
        assert all(math.isfinite(v) and v > 0 for v in g.value)


def test_aoa_score_of_the_checkpoint_and_the_policy(run):
    """The pipeline's own AoA score (AoAEvaluator.compute_curve_fitness) over 1M-90M for the
    checkpoint and over 1M-90M plus the policy at chck_100M for the policy."""
    rows = pd.read_parquet(run["tmp"] / "aoa_rl.parquet").set_index("model_id")
    assert list(rows.index) == ["demo-pre-90M", "demo-rl-final"]
    assert (rows.task == "aoa").all() and (rows.metric == "pearson_r").all()
    assert (
        rows.loc["demo-rl-final", "rl_words"] == 1000 and rows.loc["demo-pre-90M", "rl_words"] == 0
    )
    assert (rows.pretrain_words == 9 * 10**7).all() and rows.value.between(-1, 1).all()
    folder = run["out"] / "aoa_rl" / "demo-rl" / "main" / "zero_shot" / "causal" / "AoA_word"
    pre = {e["step"] for e in json.loads((folder / "score_pre.json").read_text())["results"]}
    rl = {e["step"] for e in json.loads((folder / "score_rl.json").read_text())["results"]}
    assert rl - pre == {"chck_100M"} and len(pre) == 18
