"""What can be checked when the workflow plans is checked then (issue 21, item 3): a job that
stops at its start has already cost its finished outputs, which Snakemake removes first."""

import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, TEST_CONFIG, snakemake


def config_with(tmp_path, **teacher):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["teacher"] = {**cfg.get("teacher", {}), **teacher}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def check_config(path):
    return subprocess.run(
        [sys.executable, "-m", "storyrl.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture
def no_story(tmp_path):
    t = tmp_path / "rubric.txt"
    t.write_text("Rate this: {prompt}\nScores =")  # no {story}
    return t


def test_check_config_refuses_a_missing_template(tmp_path):
    out = check_config(config_with(tmp_path, template=str(tmp_path / "nope.txt")))
    assert out.returncode == 2
    assert "teacher.template: rubric template" in out.stderr and "nope.txt' not found" in out.stderr


def test_check_config_refuses_a_template_without_a_placeholder(tmp_path, no_story):
    out = check_config(config_with(tmp_path, template=str(no_story)))
    assert out.returncode == 2
    assert f"teacher.template: {no_story} lacks the placeholder(s) {{story}}" in out.stderr


def test_an_rl_runs_template_is_checked_too(tmp_path, no_story):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["rl_runs"][0]["overrides"] = {"teacher": {"template": str(no_story)}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = check_config(path)
    assert (
        out.returncode == 2 and "rl_runs (" in out.stderr and "lacks the placeholder" in out.stderr
    )


def test_planning_refuses_a_bad_template(tmp_path, no_story):
    out = snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(config_with(tmp_path, template=str(no_story))),
        check=False,
    )
    assert out.returncode != 0
    assert "lacks the placeholder(s) {story}" in out.stdout + out.stderr
