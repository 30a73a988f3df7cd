"""docs/paper.md's fidelity table against config/paper.yaml: every row that names a config key
holds the value the validated paper config has, and `same` says truly whether it is the
authors' value."""

import re
from pathlib import Path

import pytest
import yaml

from storyrl.config import load
from storyrl.core.units import parse_words

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "paper.md"


def table_rows() -> list[dict]:
    text = DOC.read_text()
    section = text.split("## Fidelity table", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for ln in lines[2:]:  # after the |---| line
        cells = [c.strip() for c in ln.strip().strip("|").split(" | ")]
        assert len(cells) == len(header), f"{DOC}: a row with {len(cells)} cells: {ln}"
        rows.append(dict(zip(header, cells)))
    return rows


def literal(cell: str):
    """A backticked cell as YAML; anything else stays text."""
    m = re.fullmatch(r"`(.*)`", cell)
    return yaml.safe_load(m.group(1)) if m else cell


def normal(value):
    """Word counts written as 1M / 100K compare as integers."""
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?[KMB]", value):
        return parse_words(value)
    return value


def lookup(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"{key}: no such config key"
        node = node[part]
    return node


ROWS = table_rows()
KEYED = [r for r in ROWS if r["config key"].startswith("`")]


@pytest.fixture(scope="module")
def paper_config():
    return load(ROOT / "config" / "paper.yaml").model_dump(mode="json")


def test_the_table_covers_the_procedure():
    assert len(KEYED) >= 60
    assert {r["same"] for r in ROWS} <= {"yes", "no", "equivalent"}
    keys = [r["config key"] for r in KEYED]
    assert len(keys) == len(set(keys)), "a config key has two rows"


@pytest.mark.parametrize("row", KEYED, ids=[r["config key"].strip("`") for r in KEYED])
def test_row_matches_the_paper_config(row, paper_config):
    key = row["config key"].strip("`")
    ours = normal(literal(row["ours"]))
    assert normal(lookup(paper_config, key)) == ours, f"{DOC}: row {key!r} says {row['ours']}"
    authors = normal(literal(row["authors"]))
    if row["same"] == "yes":
        assert authors == ours, f"{DOC}: row {key!r} says same but the values differ"
    elif row["same"] == "no":
        assert authors != ours and row["why different"], f"{DOC}: row {key!r}: say why it differs"


def test_the_authors_behaviours_outside_our_defaults_have_rows():
    """The settings by which config/paper.yaml does what the authors' code did and our defaults
    do not: each has its row (checked above against the config)."""
    keys = {r["config key"].strip("`") for r in KEYED}
    assert {
        "teacher.parse",
        "teacher.on_failure",
        "teacher.on_call_error",
        "rl.on_step_error",
        "rl.max_prompts",
        "zero_shot.dtype",
        "zero_shot.fast_tasks",
        "analysis.score_statistic",
        "analysis.score_length_mode",
    } <= keys
    versions = [r for r in ROWS if r["setting"] == "library versions"]
    assert len(versions) == 1 and versions[0]["same"] == "no" and versions[0]["why different"]
