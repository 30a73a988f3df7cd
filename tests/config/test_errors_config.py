"""Config faults: names that become folders and shell words are checked,
paths in rules are quoted, and config errors name the key and the file they come from."""

import copy

import pytest
import yaml

from helpers import TEST_CONFIG, snakemake
from storyrl.config import ConfigError, validate

BASE = yaml.safe_load(TEST_CONFIG.read_text())


def bad(edit) -> str:
    raw = copy.deepcopy(BASE)
    edit(raw)
    with pytest.raises(ConfigError) as info:
        validate(raw, source="my.yaml")
    return str(info.value)


@pytest.mark.parametrize("variant", ["a b", "a/b", "", "../x", "x;rm"])
def test_a_variant_that_is_not_a_safe_name_is_a_config_error(variant):
    msg = bad(lambda r: r["rl_runs"][0].update(variant=variant))
    assert "rl_runs.0.variant" in msg and "letters, digits" in msg, msg


def test_names_of_runs_corpora_and_models_are_checked_too():
    msg = bad(lambda r: r["pretrain"]["runs"].update({"my run": r["pretrain"]["runs"]["demo"]}))
    assert "pretrain.runs.my run" in msg and "letters, digits" in msg, msg
    msg = bad(lambda r: r["corpora"].update({"a/b": r["corpora"]["demo"]}))
    assert "corpora.a/b" in msg, msg


def test_no_seeds_is_an_error_not_no_runs():
    msg = bad(lambda r: r["rl_runs"][0].update(seeds=[]))
    assert "rl_runs.0.seeds" in msg, msg


@pytest.mark.parametrize(
    "where",
    [
        ("pretrain", "training", "micro_batch_size"),
        ("rl", "seed"),
        ("corpora", "demo", "demo_seed"),
    ],
)
def test_a_boolean_is_not_an_integer(where):
    def edit(r):
        d = r
        for k in where[:-1]:
            d = d.setdefault(k, {})
        d[where[-1]] = True

    msg = bad(edit)
    assert ".".join(where) in msg, msg


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"teacher": {"max_failure_share": 5}}, "teacher.max_failure_share"),
        ({"rl": {"batch_size": "x"}}, "batch_size"),
        ({"reward": {"length_coef": "x"}}, "reward.length_coef"),
    ],
)
def test_variant_override_errors_name_the_key(overrides, key):
    msg = bad(lambda r: r["rl_runs"][0].update(overrides=overrides, variant="v"))
    assert key in msg and "30K-seed42-v" in msg, msg
    assert "errors.pydantic.dev" not in msg  # one line per key, not pydantic's dump


def test_rule_paths_with_spaces_are_quoted(tmp_path):
    base = tmp_path / "my baselines.yaml"
    base.write_text("X: {BLiMP: 1.0}\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"analysis": {"baselines": str(base)}}))
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(TEST_CONFIG), str(extra)).stdout
    line = next(l for l in out.splitlines() if "--baselines" in l)
    assert f"--baselines '{base}'" in line, line


def test_a_config_override_is_named_as_such(tmp_path):
    out = snakemake(tmp_path, "-n", "--config", "tokenizer={vocab_size: 5}", check=False)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "tokenizer.vocab_size" in text
    assert "--config" in text.split("invalid config in", 1)[1].splitlines()[0], text[-2000:]
