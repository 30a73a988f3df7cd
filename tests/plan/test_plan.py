"""The workflow's plan (storyrl.plan) as unit tests: which jobs a config asks for, their paths and
the sections each gets, without a `snakemake -n` subprocess. One dry run checks that the rules
make what the plan says (`test_the_rules_make_the_plans_jobs`)."""

import json
import re
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, TEST_CONFIG, paper_weights, pipeline_checkouts, snakemake
from storyrl.config import ConfigError, load
from storyrl.core import layout
from storyrl.core.units import checkpoint_name
from storyrl.plan import Plan, args, targets

PAPER = ROOT / "config" / "paper.yaml"
TABLE = {"paper-pre-900M", "900M-seed42-base-rl-final"}


def plan_of(*files, **extra) -> Plan:
    """The plan of config files, with `extra` sections written into one more file."""
    files = list(files)
    if extra:
        more = Path(files[-1]).parent / "extra.yaml"
        more.write_text(yaml.safe_dump(extra))
        files.append(more)
    return Plan.from_config(load(*files), repo=str(ROOT))


def paper_plan(tmp_path, **extra) -> Plan:
    return plan_of(PAPER, paper_weights(tmp_path), **extra)


def official_paper_plan(tmp_path, **official) -> Plan:
    return paper_plan(tmp_path, official={**pipeline_checkouts(tmp_path), **official})


# --------------------------------------------------------------------------------- models, groups
def test_the_test_configs_models_groups_and_full_sets():
    p = plan_of(TEST_CONFIG)
    assert list(p.rl_runs) == ["30K-seed42-base", "60K-seed42-base", "60K-seed7-base"]
    pre = [m for m in p.models if "-pre-" in m]
    assert pre == ["demo-pre-10K", "demo-pre-30K", "demo-pre-60K"]
    assert len(p.models) == 3 + 3 * 2  # each RL run: its checkpoint at 100 words and its final
    assert p.full_set == {"demo-pre-60K"} | {f"{r}-rl-final" for r in p.rl_runs}
    # One group per pretraining run and per RL run; groups of one shape share a rule.
    assert p.eval_shapes == {
        ("pre", "pre", ("10K", "30K", "60K")): ["demo"],
        ("rl", "rl", ("100", "final")): list(p.rl_runs),
    }
    assert p.group_models("rl", "60K-seed7-base") == [
        "60K-seed7-base-rl-100",
        "60K-seed7-base-rl-final",
    ]


def test_rl_runs_of_another_shape_get_their_own_rule(tmp_path):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    # 152: the least budget that pays for one step (8 prompts x 16 words + 8 x 3)
    short = {"rl": {"budget": 152, "checkpoint_every": 50}}
    cfg["rl_runs"].append({"checkpoint": "60K", "variant": "short", "overrides": short})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = plan_of(tmp_path / "c.yaml")
    shapes = {suffix: groups for (suffix, _, _), groups in p.eval_shapes.items()}
    assert shapes["rl"] == ["30K-seed42-base", "60K-seed42-base", "60K-seed7-base"]
    assert shapes["rl2"] == ["60K-seed42-short"]
    models = json.loads(args.story_list(p, "rl", "60K-seed42-short"))
    assert [m["model_id"] for m in models] == [
        "60K-seed42-short-rl-50",
        "60K-seed42-short-rl-100",
        "60K-seed42-short-rl-150",
        "60K-seed42-short-rl-final",
    ]
    assert models[0]["output"] == "results/story_eval/60K-seed42-short-rl-50.parquet"


def test_the_paper_plan(tmp_path):
    p = paper_plan(tmp_path)
    assert len(p.rl_runs) == 8 and p.packs == []  # one job per run unless runs share a GPU
    assert len(p.models) == 108
    # Full sets on the largest RL start and every final policy.
    assert p.full_set == {"paper-pre-900M"} | {f"{r}-rl-final" for r in p.rl_runs}
    assert not p.official.models  # no official pipeline in the paper config itself
    # One pretraining run (the default config's demo run is replaced, not merged) and its 28
    # milestone checkpoints, 1M to 1000M words.
    ckpts = [p.ckpt_dir(run, w) for run in p.cfg.pretrain.runs for w in p.cfg.pretrain.milestones]
    assert len(ckpts) == 28
    assert ckpts[0] == "results/pretrain/paper/ckpt-1M"
    assert ckpts[-1] == "results/pretrain/paper/ckpt-1000M"


def test_runs_share_a_gpu_in_packs_of_the_plans_order(tmp_path):
    p = paper_plan(tmp_path, rl_sharing={"runs_per_gpu": 3})
    ids = list(p.rl_runs)
    assert p.packs == [ids[:3], ids[3:6], ids[6:]] and p.packed == set(ids)


# ---------------------------------------------------------------------------- official, submissions
def test_glue_runs_on_the_paper_tables_models_by_default(tmp_path):
    off = official_paper_plan(tmp_path).official
    assert set(off.glue_models) == TABLE
    # reading stays on the full-set models; each model with either gets its collected Parquet
    assert len(off.reading_models) == 9 and TABLE < set(off.reading_models)
    assert off.models == off.reading_models


def test_the_config_adds_glue_models_and_a_wrong_id_is_named(tmp_path):
    more = [
        "paper-pre-900M",
        "900M-seed42-base-rl-final",
        "900M-seed43-base-rl-final",
        "paper-pre-500M",
    ]
    off = official_paper_plan(tmp_path, glue_models=more, reading=False).official
    assert set(off.glue_models) == set(more) and off.reading_models == []
    assert set(off.models) == set(more)
    with pytest.raises(ConfigError, match=r"official\.glue_models: .*paper-pre-901M"):
        official_paper_plan(tmp_path, glue_models=["paper-pre-900M", "paper-pre-901M"])


def test_a_submission_says_what_this_config_lacks():
    p = plan_of(TEST_CONFIG)
    s = p.submissions["demo-pre-60K"]
    assert s.track == "strict-small" and s.revisions == []
    assert any("a checkpoint of the strict-small track" in x for x in s.lacking)
    assert any("official.path" in x for x in s.lacking)
    assert targets.submission_outputs(p) == []
    with pytest.raises(
        ConfigError, match="results/submission/demo-pre-60K.json: this config does not make"
    ):
        targets.submission_inputs(p, "demo-pre-60K")


# ----------------------------------------------------------------------------------------- paths
def test_every_planned_file_is_under_results_by_the_layout(tmp_path):
    p = official_paper_plan(tmp_path, aoa=True)
    files = targets.all_outputs(p)
    assert len(files) == len(set(files)), "two targets name one file"
    assert all(f.startswith("results/") for f in files)
    for run in p.cfg.pretrain.runs:
        for w in p.cfg.pretrain.milestones:
            assert f"results/pretrain/{run}/{checkpoint_name(w)}" in files
    assert str(layout.summary_path("results", "900M-seed42-base")) in files
    assert p.models["900M-seed42-base-rl-final"].path == "results/rl/900M-seed42-base/final"


def test_the_default_target_leaves_out_only_what_a_planned_job_reads():
    p = plan_of(TEST_CONFIG)
    everything, ends = set(targets.all_outputs(p)), set(targets.default_target(p))
    assert ends < everything
    read = {
        f
        for kind in ("table", "figure")
        for n in targets.buildable_targets(p, kind)
        for fs in targets.analysis_inputs(p, kind, n).values()
        for f in fs
    }
    left_out = everything - ends
    assert left_out <= read | set(targets.pretrain_outputs(p)) | set(targets.rl_outputs(p)) | {
        "results/config.yaml"
    }
    assert {f for f in ends if f.startswith("results/tables/")}, "the tables are the results' ends"


# -------------------------------------------------------------------------------------- sections
def test_a_section_reaches_only_the_jobs_that_read_it(tmp_path):
    """A job's params are the sections it reads, so a change reruns exactly those jobs."""
    base = official_paper_plan(tmp_path)
    aoa = official_paper_plan(tmp_path, aoa=False)
    assert args.official_section(aoa, *args.OFFICIAL_GLUE) == args.official_section(
        base, *args.OFFICIAL_GLUE
    )
    assert args.official_section(aoa, "aoa") != args.official_section(base, "aoa")
    # PPO settings: the RL runs, not the story evaluation of the pretraining checkpoints.
    ppo = paper_plan(tmp_path, official=pipeline_checkouts(tmp_path), rl={"ppo": {"lr": 1e-5}})
    run = "900M-seed42-base"
    assert args.rl_params(ppo, run)["section"] != args.rl_params(base, run)["section"]
    assert args.story_eval_rl(ppo) == args.story_eval_rl(base)
    assert args.story_list(ppo, "pre", "paper") == args.story_list(base, "pre", "paper")


def test_the_teachers_password_travels_in_the_environment_not_the_arguments(tmp_path):
    url = "http://alice:s3cret@127.0.0.1:8000/v1"
    p = plan_of(TEST_CONFIG, teacher={"backend": "openai", "openai": {"base_url": url}})
    text = args.rl_params(p, "30K-seed42-base")["teacher"] + args.run_config_json(p)
    assert "s3cret" not in text
    ((name, value),) = args.teacher_env(p).items()
    assert value == "alice:s3cret" and f"${{{name}}}@127.0.0.1" in text


def test_the_rubric_is_read_from_the_repo_with_its_hash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run directory without config/prompts/
    p = plan_of(TEST_CONFIG)
    teacher = json.loads(args.rl_params(p, "30K-seed42-base")["teacher"])
    path = ROOT / "config" / "prompts" / "teacher_rubric.txt"
    assert teacher["template"] == str(path)
    assert teacher["template_sha256"] == args.file_sha256(str(path))


# ---------------------------------------------------------------------------------- the rules
def job_outputs(text: str) -> dict[str, list[str]]:
    """{rule: sorted outputs of its jobs} of a `snakemake -n` listing."""
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(?:local)?rule (\w+):", block)
        out = re.search(r"\n\s+output: (.*)", block)
        if m and out:
            jobs.setdefault(m.group(1), []).extend(out.group(1).split(", "))
    return {k: sorted(v) for k, v in jobs.items()}


def test_the_rules_make_the_plans_jobs(tmp_path):
    """The default target plans the same jobs as asking for every file of the plan, and the
    evaluation rules write each planned model's files."""
    p = plan_of(TEST_CONFIG)
    default = job_outputs(snakemake(tmp_path, "-n").stdout)
    everything = job_outputs(snakemake(tmp_path, "-n", *targets.all_outputs(p)).stdout)
    assert default == everything
    made = {f for files in default.values() for f in files}
    assert set(targets.all_outputs(p)) <= made
    assert {f for r, fs in default.items() if r.startswith("story_eval") for f in fs} == {
        str(layout.story_eval_path("results", m)) for m in p.models
    }
