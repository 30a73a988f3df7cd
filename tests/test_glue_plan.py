"""GLUE where the paper reports it: on the paper's plan, the official GLUE fine-tuning runs on the
two models of its BabyLM table (900M-pre and 900M-RL seed 42) unless the config names more."""

import re

import yaml

from helpers import ROOT, paper_weights, pipeline_checkouts, snakemake

PAPER = ROOT / "config" / "paper.yaml"
TABLE = {"paper-pre-900M", "900M-seed42-base-rl-final"}


def planned(tmp_path, official: dict, check=True):
    """{rule: [wildcards line of each job]} of the paper's dry run with the official pipeline."""
    extra = tmp_path / "official.yaml"
    extra.write_text(yaml.safe_dump({"official": {**pipeline_checkouts(tmp_path), **official}}))
    out = snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(PAPER),
        str(paper_weights(tmp_path)),
        str(extra),
        check=check,
    )
    if not check:
        return out
    jobs, rule = {}, None
    for line in out.stdout.splitlines():
        line = line.strip()
        if re.match(r"^(local)?rule \S+:$", line):
            rule = line.split()[1][:-1]
        elif line.startswith("wildcards:") and rule:
            jobs.setdefault(rule, []).append(
                dict(kv.split("=", 1) for kv in line[10:].strip().split(", "))
            )
    return jobs


def test_glue_runs_on_the_paper_tables_models_by_default(tmp_path):
    jobs = planned(tmp_path, {})
    glue = jobs["official_glue"]
    assert {j["model_id"] for j in glue} == TABLE
    assert len(glue) == 2 * 7  # the 7 GLUE tasks each
    # reading stays on the full-set models; each model with either gets its collected Parquet
    reading = {j["model_id"] for j in jobs["official_reading"]}
    assert len(reading) == 9 and TABLE < reading
    assert {j["model_id"] for j in jobs["official_collect"]} == reading


def test_the_config_adds_models_and_a_wrong_id_is_named(tmp_path):
    more = [
        "paper-pre-900M",
        "900M-seed42-base-rl-final",
        "900M-seed43-base-rl-final",
        "paper-pre-500M",
    ]
    jobs = planned(tmp_path, {"glue_models": more, "reading": False})
    assert {j["model_id"] for j in jobs["official_glue"]} == set(more)
    assert "official_reading" not in jobs
    assert {j["model_id"] for j in jobs["official_collect"]} == set(more)
    out = planned(tmp_path, {"glue_models": ["paper-pre-900M", "paper-pre-901M"]}, check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "official.glue_models" in text and "paper-pre-901M" in text, (
        text[-2000:]
    )
