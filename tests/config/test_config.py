from pathlib import Path

import pytest

from storyrl.config import ConfigError, load, validate
from storyrl.core.units import parse_words, words_label

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_configs_validate():
    default = load(ROOT / "config" / "config.yaml")
    assert default.corpora["demo"].format == "demo"
    paper = load(ROOT / "config" / "paper.yaml")
    m = paper.pretrain.milestones
    assert len(m) == 28 and m[0] == 1_000_000 and m[9] == 10_000_000 and m[-1] == 1_000_000_000
    assert paper.models["gpt2-small"].n_layer == 12 and paper.tokenizer.vocab_size == 16_000
    assert paper.tokenizer.special_tokens == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def test_errors_name_the_source_and_every_bad_key():
    raw = {
        "corpora": {"c": {"format": "babylm", "fraction": 1.5}},
        "models": {"m": {"n_embd": 100, "n_head": 3}},
        "pretrain": {"milestones": ["1M", "1M"], "runs": {"r": {"corpus": "c", "model": "m"}}},
        "typo_section": {},
    }
    with pytest.raises(ConfigError) as err:
        validate(raw, source="my.yaml")
    text = str(err.value)
    assert text.startswith("invalid config in my.yaml")
    for key in ("corpora.c.fraction", "models.m", "pretrain", "typo_section"):
        assert f"  {key}" in text, key


def test_runs_must_reference_declared_corpora_and_models():
    raw = {
        "corpora": {"c": {"format": "demo"}},
        "models": {"m": {}},
        "pretrain": {"milestones": [10], "runs": {"r": {"corpus": "nope", "model": "m"}}},
    }
    with pytest.raises(ConfigError, match="pretrain.runs.r.corpus: 'nope' is not in corpora"):
        validate(raw)


def test_unreadable_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpora: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load(bad)


@pytest.mark.parametrize(
    "label,n",
    [("20K", 20_000), ("1M", 1_000_000), ("1.5M", 1_500_000), (1234, 1234), ("1B", 10**9)],
)
def test_word_labels_round_trip(label, n):
    assert parse_words(label) == n
    assert parse_words(words_label(n)) == n


def test_a_billion_words_is_labelled_as_babylm_names_it():
    """Paths carry BabyLM's revision names: chck_1000M is the checkpoint ckpt-1000M."""
    assert words_label(10**9) == "1000M" and words_label(2 * 10**9) == "2000M"


@pytest.mark.parametrize("bad", ["1.5K5", "-3", "ten", "0.0001K"])
def test_bad_word_counts_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_words(bad)
