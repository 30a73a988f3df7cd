"""Tables and figures are made with the analysis settings recorded beside the results (the run's
config.yaml), never silently with other ones: `storyrl analysis all|table|figure` read them from
there, apply another config only when given one and say so, and name the values they use when
nothing is recorded."""

import json
import logging
import shutil

import pytest
import yaml

from analysis_synth import write_results
from helpers import ROOT
from storyrl.cli import main
from storyrl.core import layout

RECORDED = {"bootstrap": 40, "window_steps": 3, "smooth_steps": 2}


@pytest.fixture(scope="module")
def steps_only(tmp_path_factory):
    """A results folder with the RL step logs only (few targets: fast) and the run's config."""
    full = tmp_path_factory.mktemp("full")
    write_results(full, n_steps=10, batch=4, n_stories=4)
    root = tmp_path_factory.mktemp("results")
    for p in layout.discover(full).steps:
        (root / p.relative_to(full)).parent.mkdir(parents=True)
        shutil.copyfile(p, root / p.relative_to(full))
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["analysis"] = RECORDED
    (root / "config.yaml").write_text(yaml.safe_dump(cfg))
    return root


def run_all(results, out, *extra) -> int:
    return main(["analysis", "all", "--results", str(results), "--output", str(out), *extra])


def tables(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "tables").iterdir())}


@pytest.fixture(scope="module")
def recorded(steps_only, tmp_path_factory):
    """Every table and figure of `steps_only`, with no settings given."""
    out = tmp_path_factory.mktemp("recorded")
    assert run_all(steps_only, out) == 0
    return out


def test_analysis_all_uses_the_settings_recorded_with_the_results(steps_only, recorded, tmp_path):
    assert run_all(steps_only, tmp_path / "given", "--section", json.dumps(RECORDED)) == 0
    assert tables(recorded) == tables(tmp_path / "given")


def test_another_config_is_applied_only_when_given_and_the_log_says_so(
    steps_only, recorded, tmp_path, caplog
):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"analysis": {**RECORDED, "bootstrap": 60}}))
    caplog.set_level(logging.INFO)
    assert run_all(steps_only, tmp_path / "other", "--config", str(other)) == 0
    said = [r.getMessage() for r in caplog.records if str(other) in r.getMessage()]
    assert said and "not those recorded" in said[0] and "bootstrap: 40 -> 60" in said[0], said
    assert tables(tmp_path / "other") != tables(recorded)


def test_without_a_record_the_values_used_are_named(steps_only, tmp_path, caplog):
    bare = tmp_path / "bare"
    shutil.copytree(steps_only, bare)
    (bare / "config.yaml").unlink()
    caplog.set_level(logging.INFO)
    assert run_all(bare, tmp_path / "out") == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no config recorded" in w and "bootstrap=1000" in w for w in warned), warned


def test_one_table_or_figure_reads_the_settings_beside_its_inputs(
    steps_only, recorded, tmp_path, caplog
):
    steps = [str(p) for p in layout.discover(steps_only).steps]
    caplog.set_level(logging.INFO)
    one = tmp_path / "one" / "before_after.csv"
    assert main(["analysis", "table", "before_after", "--steps", *steps, "--output", str(one)]) == 0
    assert f"analysis settings from {steps_only / 'config.yaml'}" in caplog.text
    assert one.read_bytes() == (recorded / "tables" / "before_after.csv").read_bytes()
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"analysis": RECORDED}))
    fig = tmp_path / "fig" / "rl_dynamics.pdf"
    args = ["analysis", "figure", "rl_dynamics", "--steps", *steps, "--output", str(fig)]
    assert main([*args, "--config", str(other)]) == 0 and fig.is_file()
