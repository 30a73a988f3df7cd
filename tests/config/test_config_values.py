"""Config values that could be misread or let through. Decimal word labels,
non-finite floats, a budget below one step, the hf teacher check of check-config, and
`--batch-size 0`."""

import copy
import json

import pytest
import yaml

from helpers import TEST_CONFIG
from rl_toys import make_checkpoint  # noqa: E402
from storyrl.cli import main
from storyrl.config import ConfigError, RLConfig, validate
from storyrl.core.units import parse_words

BASE = yaml.safe_load(TEST_CONFIG.read_text())


@pytest.mark.parametrize(
    "label, words",
    [("32.2K", 32_200), ("1.001M", 1_001_000), ("16.1K", 16_100), ("0.067B", 67_000_000)],
)
def test_decimal_word_labels_are_exact(label, words):
    assert parse_words(label) == words


@pytest.mark.parametrize("label", ["1.5", "0.0001K", "2.0000005M"])
def test_word_labels_that_are_not_whole_are_still_refused(label):
    with pytest.raises(ValueError, match="whole number"):
        parse_words(label)


@pytest.mark.parametrize(
    "yaml_text, key",
    [
        ("reward: {weights: [1, .nan, 1]}", "reward.weights"),
        ("reward: {length_coef: .inf}", "reward.length_coef"),
        ("rl: {ppo: {lr: .nan}}", "rl.ppo.lr"),
        ("rl: {ppo: {lr: .inf}}", "rl.ppo.lr"),
    ],
)
def test_non_finite_numbers_are_refused(yaml_text, key):
    raw = copy.deepcopy(BASE)
    for section, values in yaml.safe_load(yaml_text).items():
        raw.setdefault(section, {})
        for k, v in values.items():
            if isinstance(v, dict):
                raw[section].setdefault(k, {}).update(v)
            else:
                raw[section][k] = v
    with pytest.raises(ConfigError) as info:
        validate(raw, source="my.yaml")
    assert key in str(info.value) and "finite" in str(info.value), str(info.value)


def test_a_budget_below_one_step_is_refused_when_planned():
    raw = copy.deepcopy(BASE)
    raw["rl"]["budget"] = 100  # the first batch's prompts alone: 8 x 16 = 128 words
    with pytest.raises(ConfigError) as info:
        validate(raw, source="my.yaml")
    msg = str(info.value)
    assert "rl.budget" in msg and "100" in msg and "128" in msg, msg


def test_rl_train_with_a_budget_below_one_step_publishes_nothing(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    section = {
        "prompts": ["once upon a time"],
        "batch_size": 4,
        "budget": 20,  # 16 prompt words + 4 replies of 3 words = 28 for the first step
        "threads": 1,
        "sampling": {"max_new_tokens": 6},
    }
    out = tmp_path / "run"
    rc = main(
        [
            "rl",
            "train",
            "--checkpoint",
            str(ckpt),
            "--output",
            str(out),
            "--section",
            json.dumps(section),
            "--scorer",
            "rl_toys:ShareScorer",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "storyrl: " in err and "rl.budget" in err and "28" in err, err
    assert not (out / "final").exists()


def test_check_config_refuses_a_hub_id_as_snakemake_does(tmp_path, capsys):
    raw = copy.deepcopy(BASE)
    raw["teacher"] = {**raw.get("teacher", {}), "backend": "hf", "model": "org/some-teacher"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    rc = main(["check-config", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "teacher.model: 'org/some-teacher'" in err, err


def test_zero_shot_batch_size_zero_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [
                "eval",
                "zero-shot",
                "--model",
                str(tmp_path),
                "--task",
                "blimp",
                "--data-path",
                str(tmp_path),
                "--batch-size",
                "0",
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--batch-size" in err and "Traceback" not in err, err


def test_rl_config_itself_stays_constructible_with_small_budgets():
    # Sections built in code (tests, planned_checkpoints) are checked where a run is planned.
    assert RLConfig(budget=100).budget == 100
