"""The paper on a SLURM cluster, planned: what the jobs will get before any of them runs.

Teacher weights: the paper's config names a local model folder, jobs run with the Hugging Face
hub offline, and a missing folder stops `snakemake -n` with the file and key, not a GPU job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TEST_CONFIG, paper_weights, snakemake
from storyrl.config import ConfigError, check_teacher_weights, load

PAPER = ROOT / "config" / "paper.yaml"


def test_paper_config_without_teacher_weights_stops_the_plan_naming_file_and_key(tmp_path):
    out = snakemake(tmp_path, "-n", "--configfile", str(PAPER), check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    teacher = yaml.safe_load(PAPER.read_text())["teacher"]["model"]
    assert f"invalid config in {PAPER}" in text and "teacher.model" in text, text[-2000:]
    assert teacher in text and "offline" in text, text[-2000:]


def test_paper_config_with_local_teacher_weights_plans(tmp_path):
    out = snakemake(tmp_path, "-n", "--configfile", str(PAPER), str(paper_weights(tmp_path)))
    assert "rule rl:" in out.stdout


def test_a_folder_without_config_json_and_a_run_override_are_caught(tmp_path):
    good = yaml.safe_load(paper_weights(tmp_path).read_text())["teacher"]["model"]
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"teacher": {"model": str(empty)}}))
    with pytest.raises(ConfigError, match=r"teacher\.model: .*without config\.json"):
        check_teacher_weights(load(PAPER, cfg), "c.yaml")
    runs = yaml.safe_load(PAPER.read_text())["rl_runs"] + [
        {"checkpoint": "900M", "variant": "other", "overrides": {"teacher": {"model": "x/y"}}}]
    cfg.write_text(yaml.safe_dump({"teacher": {"model": good}, "rl_runs": runs}))
    with pytest.raises(ConfigError, match=r"rl_runs \(900M-seed42-other\): teacher\.model: 'x/y'"):
        check_teacher_weights(load(PAPER, cfg), "c.yaml")


def test_default_config_needs_no_weights():
    check_teacher_weights(load(ROOT / "config" / "config.yaml"), "config.yaml")
    check_teacher_weights(load(TEST_CONFIG), "test.yaml")


def test_jobs_run_with_the_hub_offline(tmp_path):
    # A job's environment is that of the snakemake process that runs it (locally, and on SLURM
    # the job's own snakemake, which reads the same rule files): common.smk sets it.
    (tmp_path / "Snakefile").write_text(
        "from storyrl.config import load\n"
        f"CFG = load({str(TEST_CONFIG)!r})\n"
        f"include: {str(ROOT / 'workflow' / 'rules' / 'common.smk')!r}\n"
        "rule env:\n"
        "    output: 'env.txt'\n"
        "    shell: 'env > {output}'\n")
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(tmp_path),
                    "--snakefile", str(tmp_path / "Snakefile")], check=True, capture_output=True)
    env = dict(l.split("=", 1) for l in (tmp_path / "env.txt").read_text().splitlines() if "=" in l)
    assert env.get("HF_HUB_OFFLINE") == "1" and env.get("TRANSFORMERS_OFFLINE") == "1"
    assert env.get("HF_DATASETS_OFFLINE") == "1"
