"""The paper on a SLURM cluster, planned: what the jobs will get before any of them runs.

Teacher weights: the paper's config names a local model folder, jobs run with the Hugging Face
hub offline, and a missing folder stops `snakemake -n` with the file and key, not a GPU job.
The plan through profiles/slurm (benchmarks/slurm_plan.py: a real dry run, and snakemake's own
reading of the profiles and rules): every GPU rule runs in the GPU conda environment, threads are
the profile's and not the submitting host's, runtimes fit a 24 h partition, memory grows with
each retry, and the seconds-long steps run where snakemake runs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, TEST_CONFIG, paper_weights, pipeline_checkouts, snakemake
from storyrl.config import ConfigError, load
from storyrl.stories.checks import check_teacher_weights

PAPER = ROOT / "config" / "paper.yaml"
_spec = importlib.util.spec_from_file_location("slurm_plan", ROOT / "benchmarks" / "slurm_plan.py")
slurm_plan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slurm_plan)
# What the paper's GPU rules must get from profiles/slurm (set-threads / set-resources).
GPU_RULES = {"pretrain", "rl", "story_eval_pre", "story_eval_rl", "zero_shot_pre", "zero_shot_rl"}
DAY_MIN = 24 * 60


def test_paper_config_without_teacher_weights_stops_the_plan_naming_file_and_key(tmp_path):
    out = snakemake(tmp_path, "-n", "--configfile", str(PAPER), check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-2000:]
    teacher = yaml.safe_load(PAPER.read_text())["teacher"]["model"]
    assert f"invalid config in {PAPER}" in text and "teacher.model" in text, text[-2000:]
    assert teacher in text and "offline" in text, text[-2000:]
    # The authors' rubric is a file the user sets, like the weights: named in the same message.
    assert "teacher.template" in text and "teacher_prompt.md" in text, text[-2000:]


def test_paper_config_without_the_authors_rubric_stops_naming_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    weights = yaml.safe_load(paper_weights(tmp_path).read_text())["teacher"]["model"]
    cfg.write_text(yaml.safe_dump({"teacher": {"model": weights}}))
    unset = yaml.safe_load(PAPER.read_text())["teacher"]["template"]
    with pytest.raises(
        ConfigError, match=rf"teacher\.template: '{re.escape(unset)}': no such file"
    ):
        check_teacher_weights(load(PAPER, cfg), "c.yaml")
    bad = tmp_path / "bad.md"
    bad.write_text("{{ story }}")
    runs = yaml.safe_load(PAPER.read_text())["rl_runs"] + [
        {"checkpoint": "900M", "variant": "r", "overrides": {"teacher": {"template": str(bad)}}}
    ]
    good = yaml.safe_load(paper_weights(tmp_path).read_text())["teacher"]
    cfg.write_text(yaml.safe_dump({"teacher": good, "rl_runs": runs}))
    with pytest.raises(
        ConfigError, match=r"rl_runs \(900M-seed42-r\): teacher\.template: .*bad\.md"
    ):
        check_teacher_weights(load(PAPER, cfg), "c.yaml")
    cfg.write_text(yaml.safe_dump({"teacher": good}))
    check_teacher_weights(load(PAPER, cfg), "c.yaml")
    # Another file than the authors' at 4bfd376 (the config pins its sha256).
    del good["template_sha256"]
    cfg.write_text(yaml.safe_dump({"teacher": good}))
    with pytest.raises(ConfigError, match=r"teacher\.template: .* has sha256 .*template_sha256"):
        check_teacher_weights(load(PAPER, cfg), "c.yaml")


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
        {"checkpoint": "900M", "variant": "other", "overrides": {"teacher": {"model": "x/y"}}}
    ]
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
        "    shell: 'env > {output}'\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "--directory",
            str(tmp_path),
            "--snakefile",
            str(tmp_path / "Snakefile"),
        ],
        check=True,
        capture_output=True,
    )
    env = dict(l.split("=", 1) for l in (tmp_path / "env.txt").read_text().splitlines() if "=" in l)
    assert env.get("HF_HUB_OFFLINE") == "1" and env.get("TRANSFORMERS_OFFLINE") == "1"
    assert env.get("HF_DATASETS_OFFLINE") == "1"


def _paper_files(tmp: Path) -> list[Path]:
    """config/paper.yaml with teacher weights and the official pipeline (all its rules) set."""
    official = tmp / "official.yaml"
    official.write_text(yaml.safe_dump({"official": {**pipeline_checkouts(tmp), "aoa": True}}))
    return [PAPER, paper_weights(tmp), official]


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory, monkeypatch_module) -> dict[str, dict]:
    rows = slurm_plan.plan(_paper_files(tmp_path_factory.mktemp("plan")))
    return {r["rule"]: r for r in rows}


@pytest.fixture(scope="module")
def monkeypatch_module():
    # The plan as a user gets it: conda deployment unless they turn it off.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("STORYRL_SLURM_SDM", raising=False)
        yield mp


def test_every_gpu_rule_runs_in_the_gpu_environment(paper_plan):
    gpu = {rule: r for rule, r in paper_plan.items() if r["gpu"]}
    for rule, r in gpu.items():
        if rule in slurm_plan.HANDS_OFF:  # storyrl starts the official pipeline's interpreter
            assert r["env"] == "envs/cpu.yaml", r
            continue
        assert r["env"] == "envs/gpu.yaml", r
        # storyrl is imported from the checkout through PYTHONPATH, which conda jobs must keep.
        assert r["keeps_pythonpath"], r
    assert all(r["env"] for r in paper_plan.values() if r["rule"] != "all")
    assert GPU_RULES <= set(gpu), sorted(gpu)


def test_conda_deployment_can_be_turned_off_for_a_venv_install(monkeypatch):
    monkeypatch.setenv("STORYRL_SLURM_SDM", "none")
    assert slurm_plan.deployment()["methods"] == []
    monkeypatch.delenv("STORYRL_SLURM_SDM")
    assert slurm_plan.deployment()["methods"] == ["conda"]


def test_gpu_rules_get_the_profiles_threads_runtime_and_memory(paper_plan):
    import yte

    with (slurm_plan.PROFILE / "config.yaml").open() as f:
        prof = yte.process_yaml(f, require_use_yte=True)
    for rule in GPU_RULES:
        r = paper_plan[rule]
        assert r["uniform"] and not r["local"], r
        assert r["threads"] == prof["set-threads"][rule], r
        assert r["runtime_min"] == prof["set-resources"][rule]["runtime"], r


def test_threads_are_not_capped_at_this_hosts_cores(tmp_path):
    # The profile's threads become sbatch --cpus-per-task; more than this machine has must
    # come through (a `cores` of the submitting host would cap them).
    many = 2 * (os.cpu_count() or 1) + 1
    jobs = slurm_plan.dry_run(
        _paper_files(tmp_path),
        tmp_path,
        extra=("--set-threads", f"rl={many}", "tokenizer=" + str(many)),
    )
    got = {j["rule"]: j["threads"] for j in jobs if j["rule"] in ("rl", "tokenizer")}
    assert got == {"rl": many, "tokenizer": many}


def test_every_job_fits_a_24h_partition_and_retries_get_more_memory(paper_plan):
    for r in paper_plan.values():
        if r["local"]:
            continue
        assert 0 < r["runtime_min"] <= DAY_MIN, r
        mem = r["mem_mb_attempts"]
        assert mem[0] == r["mem_mb"] and mem[0] < mem[1] < mem[2], r


def test_tables_figures_and_collect_steps_run_locally(paper_plan):
    # and the leaderboard submission: it only collates JSON files; and the run's config record
    local = {rule for rule, r in paper_plan.items() if r["local"]}
    assert local == {"all", "table", "figure", "official_collect", "submission", "run_config"}


def test_jobs_are_given_the_rubric_they_were_planned_with(tmp_path):
    """The teacher's JSON in every job's command carries the rubric file's sha256: a job reads
    no other file than the one planned, and an edited rubric changes the jobs' params, which
    snakemake reruns."""
    import hashlib
    import json
    import shlex

    rubric = ROOT / "config" / "prompts" / "teacher_rubric.txt"
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(TEST_CONFIG))
    teachers = [
        json.loads(words[words.index("--teacher") + 1])
        for line in out.stdout.splitlines()
        if "--teacher " in line
        for words in [shlex.split(line.strip())]
    ]
    assert teachers, out.stdout[-2000:]
    want = hashlib.sha256(rubric.read_bytes()).hexdigest()
    assert {t["template_sha256"] for t in teachers} == {want}


def test_the_rules_plan_the_jobs_of_storyrl_plan(paper_plan, tmp_path):
    """The paper with the official pipeline: each rule has the jobs the plan gives it."""
    from storyrl.config import load
    from storyrl.plan import Plan, targets

    p = Plan.from_config(load(*_paper_files(tmp_path)), repo=str(ROOT))
    off = p.official
    expected = {
        "rl": len(p.rl_runs),
        "story_eval_pre": 1,
        "story_eval_rl": len(p.rl_runs),
        "official_glue": len(off.glue_models) * len(p.cfg.official.glue),
        "official_reading": len(off.reading_models),
        "official_collect": len(off.models),
        "official_aoa": len(off.aoa_runs),
        "official_aoa_rl": len(off.aoa_rl_runs),
        # Only for the submissions this config makes whole (the others are not requested).
        "official_reading_fast": len(
            {mid for s in p.submissions.values() if not s.lacking for _, mid in s.revisions}
        ),
        "submission": len(targets.submission_outputs(p)),
    }
    assert {rule: paper_plan[rule]["jobs"] for rule in expected} == expected
    assert expected["official_glue"] == 2 * 7  # the paper's BabyLM table's two models
