"""`storyrl teacher score` on stories from outside the RL loop. Such a story
can be longer than the student's 90 tokens; the paper's length bonus (words / 90) never passes 1
for a student story, so it is capped there. Errors follow the README's contract: one line
`storyrl: ...`, exit status 2."""

import json

import pandas as pd
import pytest

from storyrl.cli import main
from storyrl.core.schemas import read_table

PROMPT = "Once upon a time,"


def score(tmp_path, stories, capsys):
    out = tmp_path / "scores.parquet"
    section = {"reward": {"length_coef": 0.4}, "max_new_tokens": 90}
    rc = main(
        [
            "teacher",
            "score",
            "--stories",
            str(stories),
            "--output",
            str(out),
            "--section",
            json.dumps(section),
        ]
    )
    return rc, out, capsys.readouterr().err


def test_a_long_outside_story_gets_at_most_the_full_length_bonus(tmp_path, capsys):
    stories = tmp_path / "s.parquet"
    # 1,000 words: the uncapped bonus would be 0.4 * 1000 / 90 = 4.4 (10,000 words: 44, reward 32.4)
    conts = [" ".join(["fox"] * 1_000), " ".join(["fox"] * 45)]
    pd.DataFrame({"prompt": [PROMPT] * 2, "continuation": conts}).to_parquet(stories)
    rc, out, err = score(tmp_path, stories, capsys)
    assert rc == 0, err
    df = read_table(out, "teacher_scores").to_pandas()
    assert df.n_words.tolist() == [1_000, 45]
    assert df.length_bonus.tolist() == pytest.approx([0.4, 0.2])
    assert (df.reward <= 1.0).all(), df.reward.tolist()


def test_a_bad_stories_file_is_one_storyrl_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"prompt": ["x"], "story": ["y"]}).to_parquet(bad)
    try:
        rc, _, err = score(tmp_path, bad, capsys)
    except SystemExit as stop:  # the old handler
        rc, err = stop.code, capsys.readouterr().err
    assert rc == 2 and err.startswith(f"storyrl: {bad}: column 'continuation' missing"), (rc, err)
