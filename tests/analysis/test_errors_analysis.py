"""Analysis never drops a run or prints NaN without a word: an empty
steps.parquet is an error naming the file, a missing value is a marked cell, a results folder
that does not exist (or gives nothing to build) is an error."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis_synth import write_results  # noqa: E402
from storyrl.analysis import AnalysisError
from storyrl.analysis.load import load_steps
from storyrl.analysis.tables import write_table
from storyrl.cli import main
from storyrl.core import layout
from storyrl.core.schemas import make_metadata, read_table
from storyrl.core.schemas import write_table as write_parquet


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_results(root, n_steps=6, batch=6, n_stories=10, runs=[(20_000_000, 42), (90_000_000, 42)])
    return root


def test_an_empty_steps_table_is_an_error_naming_the_file(synth, tmp_path, capsys):
    path = layout.steps_path(synth, "90M-seed42-base")
    empty = tmp_path / "90M-seed42-base" / "steps.parquet"
    empty.parent.mkdir()
    tbl = read_table(path, "steps").slice(0, 0)
    write_parquet(empty, "steps", tbl.to_pandas(), make_metadata("steps", run_id="90M-seed42-base"))
    with pytest.raises(AnalysisError, match=f"{empty}: no steps"):
        load_steps([layout.steps_path(synth, "20M-seed42-base"), empty])
    # One table from the CLI: exit 2 and the file named, not a table without the run.
    rc = main(
        [
            "analysis",
            "table",
            "before_after",
            "--steps",
            str(empty),
            str(layout.steps_path(synth, "20M-seed42-base")),
            "--output",
            str(tmp_path / "t.csv"),
        ]
    )
    assert rc == 2 and str(empty) in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()


def test_missing_values_are_marked_cells_not_nan(tmp_path):
    df = pd.DataFrame({"run": ["a", "b"], "score": [1.234, np.nan], "n": [3, 4]})
    write_table(df, tmp_path / "t")
    md = (tmp_path / "t.md").read_text()
    assert "nan" not in md.lower() and "–" in md and "1.23" in md
    assert "nan" not in (tmp_path / "t.tex").read_text().lower()
    assert pd.read_csv(tmp_path / "t.csv")["score"].isna().tolist() == [False, True]


def test_analysis_all_of_a_folder_that_does_not_exist_fails(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    rc = main(["analysis", "all", "--results", str(missing), "--output", str(tmp_path / "o")])
    assert rc == 2 and str(missing) in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_analysis_all_that_builds_nothing_fails(tmp_path, capsys):
    (tmp_path / "results" / "rl").mkdir(parents=True)
    rc = main(
        [
            "analysis",
            "all",
            "--results",
            str(tmp_path / "results"),
            "--output",
            str(tmp_path / "o"),
            "--section",
            json.dumps({"bootstrap": 20}),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "nothing" in err and str(tmp_path / "results") in err, err
