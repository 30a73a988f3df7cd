"""The config package as a leaf, and its JSON schema: exported from the sections' field
docstrings, committed, and pointed to by the shipped config files for editors."""

import json
import subprocess
import sys

import jsonschema
import yaml

from helpers import ROOT, TEST_CONFIG
from storyrl.config import SCHEMA_PATH, Config, schema_text
from storyrl.core.babylm_spec import ZERO_SHOT_TASKS

SHIPPED = [ROOT / "config" / "config.yaml", ROOT / "config" / "paper.yaml", TEST_CONFIG]


def test_the_committed_schema_is_a_fresh_export():
    """Run `storyrl schema --output workflow/schemas/config.schema.json` after changing a section."""
    committed = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"{SCHEMA_PATH} is stale: run `storyrl schema --output {SCHEMA_PATH}`"
    )


def test_the_schema_command_prints_the_export(tmp_path):
    out = tmp_path / "s.json"
    subprocess.run(
        [sys.executable, "-m", "storyrl.cli", "schema", "--output", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_text(encoding="utf-8") == schema_text()


def test_field_docstrings_are_the_schema_descriptions():
    defs = json.loads(schema_text())["$defs"]
    assert (
        defs["CorpusConfig"]["properties"]["fraction"]["description"]
        == "Share of the shuffled lines kept (paper: 0.9)."
    )
    assert (
        "c, the weight of the length bonus"
        in defs["RewardConfig"]["properties"]["length_coef"]["description"]
    )
    assert "Stories per step" in defs["RLConfig"]["properties"]["batch_size"]["description"]
    # A section's own fields too, and Config's: `rl_runs` is documented by its docstring.
    assert "The run table" in Config.model_json_schema()["properties"]["rl_runs"]["description"]


def test_shipped_configs_pass_the_schema_and_name_it():
    """An editor checks these files with the schema: they must pass it (word labels such as
    `20M` included), and their first line must point to it."""
    schema = json.loads(schema_text())
    for path in SHIPPED:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("$schema=", 1)[1].strip()).resolve()
        assert target == (ROOT / SCHEMA_PATH).resolve(), f"{path}: header points to {target}"
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)


def test_a_schema_check_names_a_bad_key():
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["rl"] = {**raw.get("rl", {}), "batch_sise": 8}
    try:
        jsonschema.validate(raw, json.loads(schema_text()))
    except jsonschema.ValidationError as err:
        assert "batch_sise" in err.message
    else:
        raise AssertionError("the schema accepted an unknown key")


def test_importing_config_loads_no_stage_code():
    """The Snakefile and every stage import storyrl.config; it must not pull the stages in."""
    code = (
        "import sys, storyrl.config; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('storyrl'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(out.stdout.split())
    allowed = {"storyrl", "storyrl.core", "storyrl.core.units", "storyrl.core.babylm_spec"}
    assert loaded, out.stderr
    assert {m for m in loaded if m not in allowed and not m.startswith("storyrl.config")} == set()


def test_zero_shot_task_names_match_the_task_registry():
    from storyrl.evaluate.tasks import TASKS

    assert tuple(TASKS) == ZERO_SHOT_TASKS


def test_planning_the_workflow_loads_no_stage_code(tmp_path):
    """A dry run parses the Snakefile (config, rules, plan) without importing the stages: their
    torch/transformers code is for the jobs. Python's -X importtime log names every module."""
    import os
    import re
    from pathlib import Path

    snakemake = Path(sys.executable).with_name("snakemake")
    env = dict(
        os.environ,
        PYTHONPROFILEIMPORTTIME="1",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    out = subprocess.run(
        [
            str(snakemake),
            "-n",
            "--cores",
            "1",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(TEST_CONFIG),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(re.findall(r"\|\s+(storyrl[\w.]*)\s*$", out.stderr, re.M))
    assert "storyrl.config" in loaded  # the log is read right
    stages = re.compile(r"^storyrl\.(evaluate|rl|stories|pretrain|data)(\.|$)")
    # The teachers' check (weights folders, rubric templates) and the milestones' check (a
    # rerun's tokens.json) run when the workflow plans: plain Python, no torch.
    checks = {"storyrl.stories", "storyrl.stories.checks", "storyrl.stories.rubric"}
    checks |= {"storyrl.pretrain", "storyrl.pretrain.schedule"}
    assert sorted(m for m in loaded if stages.match(m) and m not in checks) == []
    every = set(re.findall(r"\|\s+([\w.]+)\s*$", out.stderr, re.M))
    assert not {"torch", "transformers", "vllm", "trl"} & every
