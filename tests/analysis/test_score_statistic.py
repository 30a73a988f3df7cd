"""The score statistic of the before/after table and of the `paper` equivalence method
(`analysis.score_statistic`): ours (`training`: the score the run trained on x 9, an unparsed
reply 4.5) and the authors' notebook's (`authors_regex`: the logged replies re-parsed with
`\\b(\\d)\\b[ ,]+(\\d)\\b[ ,]+(\\d)\\b`, no clamping, non-matching rows dropped, the rest
re-bucketed in order into groups of the batch size, mean per-story sum per group), on crafted
runs where the two differ; expected values computed by hand."""

import math

import pytest

from storyrl.analysis import AnalysisError, equivalence, load, tables
from storyrl.config import AnalysisConfig
from storyrl.core.schemas import make_metadata, write_table
from storyrl.stories.rubric import parse_reply, weighted_score

# Two runs of 4 steps x 4 stories (batch 4); windows of 2 steps / groups.
REPLIES = {
    "20M-seed42-base": [
        ["1 2 3", "12 7 9 1", "I cannot", "2,2,2"],  # regex: 6, 7+9+1=17, -, 6
        ["0 0 0", "3 3 3", "x", "1, 1, 1"],  # 0, 9, -, 3
        ["3 3 3"] * 4,  # 9 x 4
        ["2 2 2", "2 2 2", "no", "1 2 3"],  # 6, 6, -, 6
    ],
    "50M-seed42-base": [
        ["1 1 1", "1 1 1", "1 1 1", "9 9 9"],  # regex 3, 3, 3, 27 (training: 3, 3, 3, 9)
        ["1 1 1"] * 4,
        ["1 1 1"] * 4,
        ["1 1 1"] * 4,
    ],
}
# training (x 9): 20M steps 25.5/4, 16.5/4, 36/4, 22.5/4 -> before 42/8, after 58.5/8;
#                 50M steps 18/4, 12/4, 12/4, 12/4 -> before 30/8, after 3.
# authors_regex: 20M rows [6,17,6,0 | 9,3,9,9 | 9,9,6,6 | 6] -> groups 7.25, 7.5, 7.5, 6
#                -> before (7.25 + 7.5) / 2 = 7.375, after (7.5 + 6) / 2 = 6.75;
#                50M groups 9, 3, 3, 3 -> before 6, after 3.
RUBRICS = {"20M-seed42-base": "ab" * 32, "50M-seed42-base": "cd" * 32}
"""The sha256 of the rubric that scored each run (in its tables' metadata)."""
WANT = {
    "training": {"20M": (5.25, 7.3125), "50M": (3.75, 3.0)},
    "authors_regex": {"20M": (7.375, 6.75), "50M": (6.0, 3.0)},
}


def write_runs(root):
    paths = {"steps": [], "rollouts": []}
    for run_id, batches in REPLIES.items():
        rows, steps = [], []
        for step, replies in enumerate(batches, start=1):
            scores = [weighted_score(parse_reply(r)) for r in replies]
            for i, (reply, score) in enumerate(zip(replies, scores)):
                parsed = parse_reply(reply)
                rows.append(
                    {
                        "run_id": run_id,
                        "step": step,
                        "sample": i,
                        "budget_words": step * 12,
                        "prompt": "p",
                        "continuation": " a b",
                        "teacher_reply": reply,
                        "readability": parsed[0] if parsed else None,
                        "coherence": parsed[1] if parsed else None,
                        "creativity": parsed[2] if parsed else None,
                        "parsed": parsed is not None,
                        "teacher_score": score,
                        "length_bonus": 0.0,
                        "reward": score,
                        "n_tokens": 2,
                        "n_words": 2,
                        "logprob_sum": -1.0,
                        "kl": 0.0,
                    }
                )
            steps.append(
                {
                    "run_id": run_id,
                    "step": step,
                    "budget_words": step * 12,
                    "stories": 4,
                    "generated_words": 8,
                    "teacher_score_mean": sum(scores) / 4,
                    "response_tokens_mean": 2.0,
                    "response_words_mean": 2.0,
                }
            )
        folder = root / run_id
        folder.mkdir(parents=True)
        steps = [{c: s.get(c, math.nan) for c in tables_steps_columns()} for s in steps]
        teacher = {"template_sha256": RUBRICS[run_id]}
        write_table(
            folder / "steps.parquet", "steps", steps, make_metadata("steps", teacher=teacher)
        )
        write_table(
            folder / "rollouts.parquet",
            "rollouts",
            rows,
            make_metadata("rollouts", teacher=teacher),
        )
        paths["steps"].append(folder / "steps.parquet")
        paths["rollouts"].append(folder / "rollouts.parquet")
    return paths


def tables_steps_columns():
    from storyrl.core.schemas import SCHEMAS

    return SCHEMAS["steps"].names


@pytest.fixture()
def runs(tmp_path):
    p = write_runs(tmp_path)
    return load.load_steps(p["steps"]), load.load_rollouts(p["rollouts"])


@pytest.mark.parametrize("statistic", ["training", "authors_regex"])
def test_before_after_table_uses_the_chosen_statistic(runs, statistic):
    steps, rollouts = runs
    cfg = AnalysisConfig(window_steps=2, bootstrap=10, score_statistic=statistic)
    t = tables.before_after_table(steps, rollouts, cfg).set_index("pretraining")
    for label, (before, after) in WANT[statistic].items():
        assert t.loc[label, "before"] == pytest.approx(before)
        assert t.loc[label, "after"] == pytest.approx(after)
    assert set(t.statistic) == {statistic}


@pytest.mark.parametrize("statistic", ["training", "authors_regex"])
def test_the_paper_equivalence_method_uses_the_chosen_statistic(runs, statistic):
    steps, rollouts = runs
    cfg = AnalysisConfig(window_steps=2, bootstrap=10, score_statistic=statistic)
    table, _ = equivalence.compute_equivalence(steps.iloc[:0], steps, rollouts, cfg)
    paper = table[table.method == "paper"].set_index("pretraining")
    want = WANT[statistic]
    assert table.attrs["paper_before"] == pytest.approx(
        {20_000_000: want["20M"][0], 50_000_000: want["50M"][0]}
    )
    assert paper.loc["20M", "after"] == pytest.approx(want["20M"][1])
    assert paper.loc["50M", "after"] == pytest.approx(want["50M"][1])


def test_authors_regex_needs_the_rollouts(runs):
    steps, _ = runs
    cfg = AnalysisConfig(window_steps=2, bootstrap=10, score_statistic="authors_regex")
    with pytest.raises(
        AnalysisError, match=r"analysis\.score_statistic: authors_regex .*20M-seed42"
    ):
        tables.before_after_table(steps, None, cfg)


def test_the_regex_is_the_authors():
    sums = load.regex_sums(
        ["1 2 3", "12 7 9 1", "I cannot", "2,2,2", "1 1", "3-3-3", "Scores: 2, 3 ,1.", "", None]
    )
    assert sums[:4] == [6, 17, None, 6]
    assert sums[4:] == [None, None, 6, None, None]


def test_the_before_after_figure_names_the_authors_statistic(runs, tmp_path, monkeypatch):
    from storyrl.analysis import figures_rl, style

    steps, rollouts = runs
    figs = []
    monkeypatch.setattr(style, "save", lambda fig, output: figs.append(fig))
    cfg = AnalysisConfig(window_steps=2, bootstrap=10, score_statistic="authors_regex")
    figures_rl.before_after(steps, rollouts, tmp_path / "f.pdf", cfg)
    assert "the authors' regex" in figs[0].axes[0].get_title()


def test_the_before_after_table_names_the_rubric_of_its_runs(runs):
    """Shared tables say which rubric scored them: the start of its file's sha256."""
    steps, rollouts = runs
    t = tables.before_after_table(steps, rollouts, AnalysisConfig(window_steps=2, bootstrap=10))
    assert t.set_index("pretraining").rubric.to_dict() == {"20M": "ab" * 6, "50M": "cd" * 6}
