"""`storyrl share`: a results folder as a Hugging Face dataset that `datasets` loads offline, one
config per table, and from which `storyrl analysis all` rebuilds the original tables byte for
byte."""

import hashlib
import json

import pytest
import yaml

from analysis_synth import write_results
from helpers import ROOT, assert_dataset_matches_parquet
from storyrl.analysis import layout
from storyrl.analysis.registry import names
from storyrl.analysis.share import CONFIGS, MARK
from storyrl.analysis.targets import make
from storyrl.cli import main
from storyrl.config import AnalysisConfig

SECTION = {"bootstrap": 50, "share_bins": 8}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_results(root, n_steps=8, batch=6, n_stories=10)
    out = root.parent / f"{root.name}-share"
    args = [
        "share",
        "--results",
        str(root),
        "--out",
        str(out),
        "--config",
        str(ROOT / "config" / "config.yaml"),
    ]
    assert main(args) == 0
    return root, out


def test_every_config_loads_offline_with_the_rows_of_its_parquet_files(shared, tmp_path):
    root, out = shared
    rows = assert_dataset_matches_parquet(out, tmp_path)
    assert set(rows) == set(CONFIGS)
    assert rows["rollouts"] == sum(
        len(__import__("pandas").read_parquet(p)) for p in layout.discover(root).rollouts
    )


def test_analysis_all_on_the_shared_folder_rebuilds_the_tables_byte_for_byte(shared, tmp_path):
    root, out = shared
    inputs = layout.discover(root)
    original = tmp_path / "original"
    for name in names("table"):
        make("table", name, inputs, layout.table_path(original, name), AnalysisConfig(**SECTION))
    rebuilt = tmp_path / "rebuilt"
    args = ["analysis", "all", "--results", str(out), "--output", str(rebuilt), "--strict"]
    assert main([*args, "--section", json.dumps(SECTION)]) == 0
    for name in names("table"):
        for fmt in layout.TABLE_FORMATS:
            a, b = layout.table_path(original, name, fmt), layout.table_path(rebuilt, name, fmt)
            assert a.read_bytes() == b.read_bytes(), b


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
    assert "### Config" in text and "max_new_tokens" in text  # the config given
    assert "pyarrow " in text and "storyrl 0." in text
    assert "| `teacher_score` | double | 0-1 |" in text  # columns and their meaning
    assert (out / "baselines.yaml").read_bytes() == (root / "baselines.yaml").read_bytes()


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
