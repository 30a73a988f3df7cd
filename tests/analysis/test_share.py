"""`storyrl share`: a results folder as a Hugging Face dataset that `datasets` loads offline, one
config per table, with its card. That `storyrl analysis all` rebuilds a run's own tables byte for
byte from the shared folder is checked on a real run (tests/workflow/test_workflow.py)."""

import hashlib
import logging
from pathlib import Path

import pytest
import yaml

from analysis_synth import write_results
from helpers import ROOT, assert_dataset_matches_parquet
from storyrl.analysis.share import CONFIGS, MARK
from storyrl.cli import main
from storyrl.core import layout

SECTION = {"bootstrap": 50, "share_bins": 8}


@pytest.fixture(scope="module")
def run_config(tmp_path_factory) -> Path:
    """The default config with this test's analysis settings and a license."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["analysis"] = SECTION
    cfg["share"] = {"license": "cc-by-4.0"}
    path = tmp_path_factory.mktemp("config") / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def shared(tmp_path_factory, run_config):
    root = tmp_path_factory.mktemp("results")
    write_results(root, n_steps=8, batch=6, n_stories=10)
    out = root.parent / f"{root.name}-share"
    assert (
        main(["share", "--results", str(root), "--out", str(out), "--config", str(run_config)]) == 0
    )
    return root, out


def test_every_config_loads_offline_with_the_rows_of_its_parquet_files(shared, tmp_path):
    root, out = shared
    rows = assert_dataset_matches_parquet(out, tmp_path)
    assert set(rows) == set(CONFIGS)
    assert rows["rollouts"] == sum(
        len(__import__("pandas").read_parquet(p)) for p in layout.discover(root).rollouts
    )


def test_the_card_declares_the_configs_and_holds_the_provenance(shared):
    root, out = shared
    text = (out / "README.md").read_text()
    head = yaml.safe_load(text.split("---")[1])
    declared = {c["config_name"]: c["data_files"][0]["path"] for c in head["configs"]}
    assert declared["rollouts"] == "rl/*/rollouts.parquet"
    assert declared["eval_scores"] == "eval/*.parquet"
    for p in sorted(out.rglob("*.parquet")) + sorted(out.rglob("summary.json")):
        rel = p.relative_to(out).as_posix()
        assert f"| `{rel}` |" in text, rel
        assert hashlib.sha256(p.read_bytes()).hexdigest() in text, rel
        assert p.read_bytes() == (root / rel).read_bytes()
    recorded = yaml.safe_load((out / "config.yaml").read_text())  # the config given, validated
    assert (
        recorded["analysis"]["bootstrap"] == 50 and "max_new_tokens" in recorded["rl"]["sampling"]
    )
    assert "`config.yaml`" in text
    assert "pyarrow " in text and "storyrl 0." in text
    assert "| `teacher_score` | double | 0-1 |" in text  # columns and their meaning
    assert (out / "baselines.yaml").read_bytes() == (root / "baselines.yaml").read_bytes()


def test_the_card_has_the_hubs_metadata(shared):
    root, out = shared
    text = (out / "README.md").read_text()
    head = yaml.safe_load(text.split("---")[1])
    assert head["license"] == "cc-by-4.0" and head["language"] == ["en"]
    assert head["pretty_name"] and head["task_categories"] == ["text-generation"]
    assert head["size_categories"] == ["1K<n<10K"]
    info = {i["config_name"]: i for i in head["dataset_info"]}
    assert set(info) == {c["config_name"] for c in head["configs"]} == set(CONFIGS)
    story = info["story_eval"]
    assert {"name": "model_id", "dtype": "string"} in story["features"]
    n = sum(len(__import__("pandas").read_parquet(p)) for p in layout.discover(root).story_eval)
    assert story["splits"] == [
        {"name": "train", "num_bytes": story["splits"][0]["num_bytes"], "num_examples": n}
    ]
    assert {"name": "run_id", "dtype": "string"} in info["pretrain_log"]["features"]
    # eval_scores holds percentages for accuracies (76.8, not 0.768): the card says so
    values = [l for l in text.splitlines() if l.startswith("| `value` |")]
    assert values and "percent (0-100" in values[0] and "in 0-1 " not in values[0], values


def test_story_eval_and_pretrain_log_rows_name_their_model_and_run(shared, tmp_path):
    # Read as one dataset, the rows of many files must still say whose they are.
    import pandas as pd

    root, out = shared
    for p in (out / "story_eval").glob("*.parquet"):
        assert set(pd.read_parquet(p, columns=["model_id"])["model_id"]) == {p.stem}, p
    for p in (out / "pretrain").glob("*/log.parquet"):
        assert set(pd.read_parquet(p, columns=["run_id"])["run_id"]) == {p.parent.name}, p


def test_a_card_without_a_license_warns(shared, tmp_path, caplog):
    root, _ = shared
    caplog.set_level(logging.WARNING)
    out = tmp_path / "nolicense"
    assert main(["share", "--results", str(root), "--out", str(out)]) == 0
    assert "license" not in yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert any("share.license" in r.getMessage() for r in caplog.records), caplog.text


def test_sharing_again_updates_the_folder_and_a_foreign_folder_is_refused(shared, tmp_path):
    root, out = shared
    again = tmp_path / "again"
    assert main(["share", "--results", str(root), "--out", str(again)]) == 0
    (again / "notes.parquet").write_bytes(b"x")  # not written by share: kept
    (again / "README.md").write_text((again / "README.md").read_text() + "edited\n")
    assert main(["share", "--results", str(root), "--out", str(again)]) == 0
    assert (again / "notes.parquet").read_bytes() == b"x"
    assert MARK in (again / "README.md").read_text()
    assert "edited" not in (again / "README.md").read_text()

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["share", "--results", str(root), "--out", str(mine)]) == 2
    assert (mine / "notes.txt").read_text() == "keep me"
    assert main(["share", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
