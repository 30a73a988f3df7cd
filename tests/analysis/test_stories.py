"""Stories to read (the `stories` table) and the pretraining loss figure, from synthetic
results written through the real schemas, and both planned by the workflow."""

import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis_synth import write_pretrain_log, write_results
from helpers import snakemake
from storyrl.analysis.load import load_pretrain_logs
from storyrl.analysis.targets import make
from storyrl.cli import main
from storyrl.config import AnalysisConfig
from storyrl.core import layout
from storyrl.core.schemas import read_metadata

RUNS = [(20_000_000, 42), (900_000_000, 42), (900_000_000, 43)]
N_STEPS, BATCH = 30, 8


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("stories")
    write_results(root, n_steps=N_STEPS, batch=BATCH, n_stories=4, runs=RUNS)
    return root


def _table(rollouts, out, cfg=None):
    make("table", "stories", layout.Inputs(rollouts=rollouts), out, cfg or AnalysisConfig())
    return pd.read_csv(out.with_suffix(".csv"))


def test_stories_come_from_the_first_and_last_tenth_and_the_best_scores(synth, tmp_path):
    rollouts = layout.discover(synth).rollouts
    t = _table(rollouts, tmp_path / "stories.csv")
    assert sorted(t.run_id.unique()) == sorted(p.parent.name for p in rollouts)
    for path in rollouts:
        run = path.parent.name
        stories = pd.read_parquet(path)
        got = t[t.run_id == run]
        assert list(got.group) == ["first"] * 2 + ["last"] * 2 + ["best"] * 2
        # A tenth of 30 steps: steps 1-3 and 28-30.
        assert got[got.group == "first"].step.between(1, 3).all()
        assert got[got.group == "last"].step.between(28, 30).all()
        best = got[got.group == "best"]
        top = stories[stories.parsed].teacher_score.nlargest(2).to_numpy() * 9
        np.testing.assert_allclose(sorted(best.score, reverse=True), top)
        # Every row is the story of the file at its (step, sample), text and scores alike.
        rows = got.merge(stories, on=["run_id", "step", "sample"], suffixes=("", "_file"))
        assert len(rows) == len(got)
        assert (rows.story == rows.continuation).all() and (rows.prompt_file == rows.prompt).all()
        assert (rows.teacher_reply == rows.teacher_reply_file).all()
        np.testing.assert_allclose(rows.score, rows.teacher_score * 9)
        assert (rows.words == rows.n_words).all() and (rows.rl_words == rows.budget_words).all()
    # The draw is seeded: another analysis seed picks other stories from the same windows.
    other = _table(rollouts, tmp_path / "other.csv", AnalysisConfig(seed=1))
    keys = ["run_id", "group", "step", "sample"]
    assert not other[keys].equals(t[keys])
    md = (tmp_path / "stories.md").read_text()
    assert "teacher_reply" in md and md.count("\n") == len(t) + 2
    assert "prompt" not in md and "Once upon a time" not in md  # the prompt: in the CSV only


def test_the_same_stories_whatever_the_order_of_files_and_rows(synth, tmp_path):
    rollouts = layout.discover(synth).rollouts
    shuffled = []
    rng = np.random.default_rng(5)
    for i, p in enumerate(reversed(rollouts)):
        table = pq.read_table(p)
        copy = tmp_path / "shuffled" / f"file{i}" / "rollouts.parquet"
        copy.parent.mkdir(parents=True)
        pq.write_table(table.take(rng.permutation(len(table))), copy)  # metadata kept
        assert read_metadata(copy) == read_metadata(p)
        shuffled.append(copy)
    a, b = tmp_path / "a" / "stories.csv", tmp_path / "b" / "stories.csv"
    for out, files in ((a, rollouts), (b, shuffled)):
        assert (
            main(
                [
                    "analysis",
                    "table",
                    "stories",
                    "--rollouts",
                    *map(str, files),
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
    for fmt in layout.TABLE_FORMATS:
        assert a.with_suffix(fmt).read_bytes() == b.with_suffix(fmt).read_bytes(), fmt


def test_pretrain_loss_figure_from_logs_with_their_milestones(tmp_path):
    logs = [
        write_pretrain_log(tmp_path / "results", "paper"),
        write_pretrain_log(tmp_path / "results", "small", milestones=[1, 2, 5], seed=1),
    ]
    data = load_pretrain_logs(logs)
    assert set(data.run_id) == {"paper", "small"}
    assert data[data.run_id == "small"].milestones.iloc[0] == (1_000_000, 2_000_000, 5_000_000)
    assert layout.discover(tmp_path / "results").pretrain_logs == sorted(logs)
    out = tmp_path / "figures" / "pretrain_loss.pdf"
    assert (
        main(
            [
                "analysis",
                "figure",
                "pretrain_loss",
                "--pretrain-logs",
                *map(str, logs),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"%PDF"
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_the_workflow_plans_the_stories_table_and_the_pretraining_figure(tmp_path):
    plan = snakemake(tmp_path, "-n", "-p", "--cores", "1").stdout
    cmds = re.findall(r"storyrl\.cli analysis (table|figure) (\w+) --output (\S+) ([^>]*)", plan)
    by_name = {name: (out, args) for _, name, out, args in cmds}
    out, args = by_name["stories"]
    assert out == "results/tables/stories.csv"
    assert "--rollouts results/rl/30K-seed42-base/rollouts.parquet" in args
    out, args = by_name["pretrain_loss"]
    assert out == "results/figures/pretrain_loss.pdf"
    assert "--pretrain-logs results/pretrain/demo/log.parquet" in args
    for fmt in layout.TABLE_FORMATS:
        assert f"results/tables/stories{fmt}" in plan


def test_a_bar_in_a_story_stays_inside_its_markdown_cell(tmp_path):
    from storyrl.analysis.tables import write_table

    write_table(pd.DataFrame({"story": ["a | b", None], "score": [1.0, 2.0]}), tmp_path / "t")
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert r"a \| b" in lines[2] and lines[3].count("|") == lines[2].count("|") - 1 == 3
