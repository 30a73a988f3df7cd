"""The workflow itself: an end-to-end run on the test config (built once per test run), its files,
rebuilds, sharing and rerun decisions. The paper's plan: tests/plan/test_plan.py, test_docs_run.py."""

import json
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from transformers import AutoModelForCausalLM

from helpers import (
    TEST_CONFIG,
    assert_dataset_matches_parquet,
    job_counts,
    snakemake,
)
from storyrl.analysis.registry import names
from storyrl.core.schemas import read_metadata

TABLES, FIGURES = names("table"), names("figure")


@pytest.fixture(scope="module")
def finished(test_config_run, tmp_path_factory) -> Path:
    """A copy of the test config's finished run (times and modes kept): these tests rebuild a
    figure, share and report in it."""
    work = tmp_path_factory.mktemp("wf") / "run"
    shutil.copytree(test_config_run, work, symlinks=True)
    return work


def jobs_of_dry_run(work: Path, *configfiles: Path, targets=(), count: str | None = None):
    """The rules a dry run would run (or how many jobs of rule `count`)."""
    jobs = job_counts(work, *configfiles, targets=targets)
    return jobs.get(count, 0) if count else set(jobs)


def test_end_to_end_builds_every_checkpoint_with_logs_and_benchmarks(finished):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    for label in cfg["pretrain"]["milestones"]:
        ckpt = finished / "results" / "pretrain" / "demo" / f"ckpt-{label}"
        assert AutoModelForCausalLM.from_pretrained(ckpt, local_files_only=True).config.n_embd == 32
    for rule in (
        "demo_corpus",
        "subset",
        "tokenizer",
        "tokens",
        "pretrain",
        "rl",
        "story_eval_pre",
        "story_eval_rl",
        "zero_shot_pre",
        "zero_shot_rl",
        "demo_eval_data",
        "table",
        "figure",
    ):
        assert list((finished / "results" / "logs" / rule).glob("*.log")), rule
        assert list((finished / "results" / "benchmarks" / rule).glob("*.tsv")), rule
    assert (
        finished / "results" / "corpus" / "demo" / "raw" / "train_demo" / "childes.train"
    ).exists()


RUNS = ["30K-seed42-base", "60K-seed42-base", "60K-seed7-base"]
PRE_MODELS = ["demo-pre-10K", "demo-pre-30K", "demo-pre-60K"]
RL_MODELS = [f"{r}-rl-{c}" for r in RUNS for c in ("100", "final")]


def test_the_console_shows_the_long_jobs_progress(finished):
    """Pretraining and RL write their log files, and their progress lines also reach the
    console snakemake prints to: the user sees the long jobs move without opening a log."""
    console = (finished / "console.txt").read_text()
    pretrain = re.findall(r"^\[\d\d:\d\d:\d\d\] pretrain demo: step \d+/(\d+)", console, re.M)
    assert pretrain and pretrain[-1] != "?", console[-3000:]
    assert re.search(r"^\[\d\d:\d\d:\d\d\] pretrain demo: step (\d+)/\1 \(100%\)", console, re.M)
    for run_id in yaml_runs():
        assert re.search(rf"^\[[\d:]+\] rl {run_id}: step \d+/\d+", console, re.M), run_id
    # Only the progress lines: the jobs' other output stays in their logs.
    assert "storyrl.pretrain.train" not in console and "milestone" not in console


def yaml_runs() -> list[str]:
    from storyrl.config import load

    return list(load(TEST_CONFIG).rl_plan())


def test_every_file_and_folder_of_the_run_honours_the_umask(finished):
    wrong = []
    for p in [finished / "results", *(finished / "results").rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        if p.is_symlink():
            continue
        want = 0o775 if p.is_dir() or mode & 0o111 else 0o664
        if mode != want:
            wrong.append(f"{oct(mode)} {p.relative_to(finished)}")
    assert not wrong, "\n".join(wrong[:40])
    ckpt = finished / "results" / "pretrain" / "demo" / "ckpt-60K"
    assert stat.S_IMODE((ckpt / "model.safetensors").stat().st_mode) == 0o664


def test_every_rl_run_has_its_tables_checkpoints_and_ledger(finished):
    res = finished / "results" / "rl"
    assert sorted(p.name for p in res.iterdir()) == sorted(RUNS)
    for run in RUNS:
        steps = pd.read_parquet(res / run / "steps.parquet")
        summary = json.loads((res / run / "summary.json").read_text())
        assert len(steps) == summary["steps"] > 1 and summary["budget_words"] <= 200
        assert len(pd.read_parquet(res / run / "rollouts.parquet")) == 8 * summary["steps"]
        for ckpt in ("checkpoints/100", "final"):
            info = json.loads((res / run / ckpt / "storyrl_rl.json").read_text())
            assert info["run_id"] == run and AutoModelForCausalLM.from_pretrained(res / run / ckpt)
        assert (
            summary["total_words_seen"] == int(run.split("K")[0]) * 1000 + summary["budget_words"]
        )


def test_every_model_has_a_story_and_a_zero_shot_evaluation(finished):
    for model in PRE_MODELS + RL_MODELS:
        stories = pd.read_parquet(finished / "results" / "story_eval" / f"{model}.parquet")
        assert len(stories) == 8 and stories["parsed"].all(), model
        scores = pd.read_parquet(finished / "results" / "eval" / f"{model}.parquet")
        tasks = set(scores["task"])
        assert "blimp_fast" in tasks, model
        # full sets on the largest RL starting checkpoint and on the final policies only
        assert ("blimp" in tasks) == (model == "demo-pre-60K" or model.endswith("-final")), model
    meta = read_metadata(finished / "results" / "story_eval" / "60K-seed7-base-rl-final.parquet")
    assert (
        meta["pretrain_words"] == 60_000
        and meta["run_id"] == "60K-seed7-base"
        and meta["rl_words"] > 100
    )


def test_every_table_and_figure_is_built(finished):
    for name in TABLES:
        for fmt in (".csv", ".md", ".tex"):
            assert (finished / "results" / "tables" / f"{name}{fmt}").stat().st_size > 0, name
    for name in FIGURES:
        png = finished / "results" / "figures" / f"{name}.png"
        assert png.read_bytes()[:4] == b"\x89PNG" and (png.with_suffix(".pdf")).stat().st_size > 0
    ledger = pd.read_csv(finished / "results" / "tables" / "ledger.csv")
    assert len(ledger) == len(RUNS)


def test_one_figure_rebuilds_alone(finished):
    target = finished / "results" / "figures" / "rl_dynamics.pdf"
    target.unlink()
    assert jobs_of_dry_run(finished, TEST_CONFIG, targets=["results/figures/rl_dynamics.pdf"]) == {
        "figure"
    }
    snakemake(finished, "--cores", "1", "results/figures/rl_dynamics.pdf")
    assert target.exists() and jobs_of_dry_run(finished, TEST_CONFIG) == set()


def test_report_bundles_the_figures(finished):
    snakemake(finished, "--report", "report.zip")
    with zipfile.ZipFile(finished / "report.zip") as z:
        names = z.namelist()
    assert sum(n.endswith(".png") for n in names) >= len(FIGURES), names
    assert sum(n.endswith(".csv") for n in names) >= len(TABLES), names
    assert any(n.endswith("/stories.csv") for n in names), names  # stories to read, captioned


def test_shared_results_load_offline_and_rebuild_every_table_byte_for_byte(finished, tmp_path):
    # `snakemake share`: the Parquet and JSON files as a Hugging Face dataset, no checkpoints,
    # no corpus, no logs; `datasets` loads every config offline, and the analysis rebuilds the
    # run's own tables from it byte for byte.
    snakemake(finished, "share", "--cores", "1")
    shared = finished / "results" / "share"
    files = [p for p in shared.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp"]
    assert {p.suffix for p in files} == {".parquet", ".json", ".md", ".yaml"}
    rows = assert_dataset_matches_parquet(shared, tmp_path)
    for p in (shared / "story_eval").glob("*.parquet"):
        assert set(pd.read_parquet(p, columns=["model_id"])["model_id"]) == {p.stem}, p
    for p in (shared / "pretrain").glob("*/log.parquet"):
        assert set(pd.read_parquet(p, columns=["run_id"])["run_id"]) == {p.parent.name}, p
    assert set(rows) == {
        "rollouts",
        "steps",
        "story_eval",
        "eval_scores",
        "pretrain_log",
        "agreement",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "storyrl.cli",
            "analysis",
            "all",
            "--results",
            str(shared),
            "--output",
            str(tmp_path / "out"),
            "--strict",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # no --config: the settings recorded with the results, and the log says so
    assert f"analysis settings from {shared / 'config.yaml'}" in out.stderr, out.stderr[-3000:]
    for name in FIGURES:
        assert (tmp_path / "out" / "figures" / f"{name}.png").exists(), name
    for name in TABLES:
        for fmt in (".csv", ".md", ".tex"):
            a = (tmp_path / "out" / "tables" / f"{name}{fmt}").read_bytes()
            assert a == (finished / "results" / "tables" / f"{name}{fmt}").read_bytes(), name


def test_nothing_to_do_after_a_run_and_only_the_changed_section_reruns(finished, tmp_path):
    assert jobs_of_dry_run(finished, TEST_CONFIG) == set()
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    changed = tmp_path / "changed.yaml"
    cfg["analysis"]["bootstrap"] = 60
    changed.write_text(yaml.safe_dump(cfg))
    # the run's recorded config (results/config.yaml), and the tables and figures made with it
    assert jobs_of_dry_run(finished, changed) == {"run_config", "table", "figure", "all"}
    cfg["rl"]["ppo"]["lr"] = 2e-4  # RL and what depends on it; not pretraining or its evaluations
    changed.write_text(yaml.safe_dump(cfg))
    assert jobs_of_dry_run(finished, changed) == {
        "run_config",
        "rl",
        "story_eval_rl",
        "zero_shot_rl",
        "teacher_agreement",  # the second judge re-scores the new stories
        "table",
        "figure",
        "all",
    }
    assert jobs_of_dry_run(finished, changed, count="zero_shot_rl") == len(RUNS)
    assert jobs_of_dry_run(finished, changed, count="story_eval_rl") == len(RUNS)
    cfg["pretrain"]["training"]["lr"] = 1e-3
    changed.write_text(yaml.safe_dump(cfg))
    assert "pretrain" in jobs_of_dry_run(finished, changed)
    cfg["tokenizer"]["vocab_size"] = 400
    changed.write_text(yaml.safe_dump(cfg))
    assert {"tokenizer", "tokens", "pretrain"} <= jobs_of_dry_run(finished, changed)


def test_a_bad_config_stops_the_workflow_naming_file_and_key(tmp_path):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["models"]["micro"]["n_head"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"invalid config in {bad}" in text and "models.micro" in text
