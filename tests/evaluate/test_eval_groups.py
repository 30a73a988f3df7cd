"""Several checkpoints per evaluation job (`--models`): the files are byte-identical to those of
one job per checkpoint, for story evaluation (heuristic teacher) and the zero-shot suite; and the
workflow asks for one job per group, which a request for one model's file runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalfixtures import build_model
from helpers import ROOT, TEST_CONFIG, job_counts, snakemake
from storyrl.cli import main

RL = json.dumps(
    {
        "prompts": ["once upon a time", "the cat"],
        "batch_size": 4,
        "threads": 1,
        "sampling": {"max_new_tokens": 8},
    }
)
STORIES = json.dumps({"n_stories": 6, "batch_size": 4, "seed": 42, "threads": 1})
TEACHER = json.dumps(
    {"backend": "heuristic", "template": str(ROOT / "config" / "prompts" / "teacher_rubric.txt")}
)
TASKS = ["blimp", "ewok", "entity_tracking", "wug_adj"]


def cli(*args: str) -> subprocess.CompletedProcess:
    """A fresh process, as a workflow job runs it."""
    out = subprocess.run(
        [sys.executable, "-m", "storyrl.cli", *args], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[dict]:
    """Two tiny checkpoints with their ids; the second, like an RL final policy, reads its RL
    words from the folder (none there: 0)."""
    root = tmp_path_factory.mktemp("group")
    a, b = root / "ckpt-a", root / "ckpt-b"
    build_model(a, seed=1)
    build_model(b, seed=2)
    return [
        {"model": str(a), "model_id": "demo-pre-a", "pretrain_words": 20_000, "rl_words": 0},
        {"model": str(b), "model_id": "demo-pre-b", "pretrain_words": 50_000, "rl_words": None},
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "evaluation_data"
    assert main(["demo-eval", "--out", str(out), "--n-full", "12", "--n-fast", "6"]) == 0
    return out


def files(folder: Path) -> dict[str, bytes]:
    """The outputs under `folder`; not a group job's `.kept/` copies (storyrl.evaluate.kept)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".kept" not in p.relative_to(folder).parts
    }


def test_grouped_story_eval_writes_the_files_of_one_job_per_model(models, tmp_path):
    shared = ["--section", STORIES, "--rl", RL, "--teacher", TEACHER, "--reward", "{}"]
    for m in models:  # today's rule: one process per model
        words = [
            f
            for k in ("pretrain_words", "rl_words")
            if m[k] is not None
            for f in (f"--{k.replace('_', '-')}", str(m[k]))
        ]
        cli(
            "eval",
            "stories",
            "--model",
            m["model"],
            "--output",
            str(tmp_path / "one" / f"{m['model_id']}.parquet"),
            "--model-id",
            m["model_id"],
            "--run-id",
            "",
            *words,
            *shared,
        )
    group = [
        {**m, "run_id": "", "output": str(tmp_path / "group" / f"{m['model_id']}.parquet")}
        for m in models
    ]
    # The rule passes only the rl keys that story evaluation reads (prompts, sampling).
    part = {k: v for k, v in json.loads(RL).items() if k in ("prompts", "sampling")}
    shared[shared.index(RL)] = json.dumps(part)
    out = cli("eval", "stories", "--models", json.dumps(group), *shared)
    one, grouped = files(tmp_path / "one"), files(tmp_path / "group")
    assert sorted(one) == ["demo-pre-a.parquet", "demo-pre-b.parquet"]
    assert grouped == one
    # the two models' stories differ (else equal files would prove nothing)
    assert one["demo-pre-a.parquet"] != one["demo-pre-b.parquet"]
    assert [json.loads(l)["model_id"] for l in out.stdout.splitlines()] == [
        "demo-pre-a",
        "demo-pre-b",
    ]


def test_grouped_zero_shot_writes_the_files_of_one_job_per_model(models, data, tmp_path):
    shared = ["--data-path", str(data), "--tasks", *TASKS, "--batch-size", "8", "--device", "cpu"]
    variants = [["fast"], ["fast", "full"]]
    for m, var in zip(models, variants):
        words = [
            f
            for k in ("pretrain_words", "rl_words")
            if m[k] is not None
            for f in (f"--{k.replace('_', '-')}", str(m[k]))
        ]
        cli(
            "eval",
            "zero-shot-suite",
            "--model",
            m["model"],
            "--model-id",
            m["model_id"],
            *words,
            "--variant",
            *var,
            "--parquet",
            str(tmp_path / "one" / f"{m['model_id']}.parquet"),
            "--output-dir",
            str(tmp_path / "one" / "official" / m["model_id"]),
            *shared,
        )
    group = [
        {
            **m,
            "variants": var,
            "parquet": str(tmp_path / "group" / f"{m['model_id']}.parquet"),
            "output_dir": str(tmp_path / "group" / "official" / m["model_id"]),
        }
        for m, var in zip(models, variants)
    ]
    cli("eval", "zero-shot-suite", "--models", json.dumps(group), *shared)
    one, grouped = files(tmp_path / "one"), files(tmp_path / "group")
    assert any(k.endswith("predictions.json") for k in one)
    assert sum(k.endswith(".parquet") for k in one) == 2
    assert grouped == one
    assert one["demo-pre-a.parquet"] != one["demo-pre-b.parquet"]


def test_a_bad_list_names_the_entry_and_field(models, tmp_path, capsys):
    base = [
        "eval",
        "stories",
        "--section",
        STORIES,
        "--rl",
        RL,
        "--teacher",
        TEACHER,
        "--reward",
        "{}",
    ]
    bad = [
        {"model": models[0]["model"], "output": str(tmp_path / "a.parquet")},
        {"model": models[1]["model"], "outptu": "x"},
    ]
    assert main([*base, "--models", json.dumps(bad)]) == 2
    err = capsys.readouterr().err
    assert "--models[1]" in err and "output" in err and "outptu" in err, err
    assert main([*base, "--models", json.dumps(bad[:1]), "--model", "x"]) == 2
    assert "--models" in capsys.readouterr().err
    assert main([*base, "--model", models[0]["model"]]) == 2
    assert "--output required" in capsys.readouterr().err
    twice = [bad[0], bad[0]]
    assert main([*base, "--models", json.dumps(twice)]) == 2
    assert "more than one checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "a.parquet").exists()


def test_one_job_per_group_and_one_file_asks_for_its_group(tmp_path):
    counts = job_counts(tmp_path, TEST_CONFIG)
    # test config: one pretraining run (3 milestones), 3 RL runs (a checkpoint and the final)
    assert {k: v for k, v in counts.items() if "eval" in k or "zero_shot" in k} == {
        "demo_eval_data": 1,
        "story_eval_pre": 1,
        "story_eval_rl": 3,
        "zero_shot_pre": 1,
        "zero_shot_rl": 3,
    }
    one = job_counts(
        tmp_path, TEST_CONFIG, targets=["results/story_eval/60K-seed7-base-rl-100.parquet"]
    )
    assert one.get("story_eval_rl") == 1 and "story_eval_pre" not in one, one
    out = snakemake(tmp_path, "-n", "-p", "results/eval/demo-pre-30K.parquet").stdout
    job = out[out.index("rule zero_shot_pre:") :]
    job = job[: job.index("Shell command")]
    assert all(f"results/eval/demo-pre-{w}.parquet" in job for w in ("10K", "30K", "60K")), job
