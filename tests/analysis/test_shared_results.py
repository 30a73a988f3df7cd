"""A shared results folder is read by what its files say they are, not pooled
blindly. A stray copy of a run, duplicated step rows and seeds of one setting run under
different configurations are refused with the files named; a junk summary.json, NaN scores in
a story evaluation and a float `step` column are errors naming the file; a file that pandas
wrote back (large_string columns, other integer widths) is read."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis_synth import write_results  # noqa: E402
from storyrl.analysis import AnalysisError
from storyrl.analysis.load import load_steps, load_story_eval, load_summaries
from storyrl.analysis.tables import ledger_table
from storyrl.cli import main
from storyrl.core import layout
from storyrl.core.schemas import META_KEY, SchemaError, read_metadata

RUN = "90M-seed42-base"


@pytest.fixture
def synth(tmp_path):
    root = tmp_path / "results"
    write_results(
        root,
        n_steps=5,
        batch=6,
        n_stories=8,
        runs=[(20_000_000, 42), (90_000_000, 42), (90_000_000, 43)],
    )
    return root


def rewrite(path, edit_table=None, **meta):
    """Write `path` again with its metadata updated by `meta` (and its table by `edit_table`)."""
    tbl = pq.read_table(path)
    old = json.loads(tbl.schema.metadata[META_KEY])
    if edit_table:
        tbl = edit_table(tbl)
    tbl = tbl.replace_schema_metadata({META_KEY: json.dumps({**old, **meta}).encode()})
    pq.write_table(tbl, path)


def test_a_backup_copy_of_a_run_is_refused_with_both_folders_named(synth, tmp_path, capsys):
    shutil.copytree(synth / "rl" / RUN, synth / "rl" / f"{RUN}.bak")
    rc = main(["analysis", "all", "--results", str(synth), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert str(layout.steps_path(synth, RUN)) in err and f"{RUN}.bak" in err, err[-2000:]
    assert not (tmp_path / "out" / "tables" / "before_after.csv").exists()


def test_a_backup_summary_is_the_same_run_not_another_ledger_row(synth):
    shutil.copytree(synth / "rl" / RUN, synth / "rl" / f"{RUN}.bak")
    with pytest.raises(AnalysisError, match=r"summary\.json.*summary\.json"):
        load_summaries(layout.discover(synth).summaries)


def test_duplicated_step_rows_are_refused(synth):
    path = layout.steps_path(synth, RUN)
    rewrite(path, edit_table=lambda t: pa.concat_tables([t, t.slice(2, 1)]))
    with pytest.raises(AnalysisError, match=rf"{path}.*step 3"):
        load_steps(layout.discover(synth).steps)


def test_seeds_run_under_different_settings_are_refused(synth):
    a = layout.steps_path(synth, "90M-seed42-base")
    b = layout.steps_path(synth, "90M-seed43-base")
    rewrite(a, setting_hash="aaaa", budget=1_000_000)
    rewrite(b, setting_hash="bbbb", budget=500_000)
    with pytest.raises(AnalysisError) as info:
        load_steps(layout.discover(synth).steps)
    msg = str(info.value)
    assert str(a) in msg and str(b) in msg and "budget" in msg, msg
    # The same setting with two seeds is what seeds are for.
    rewrite(b, setting_hash="aaaa", budget=1_000_000)
    assert set(load_steps(layout.discover(synth).steps).seed) == {42, 43}


def test_a_junk_summary_is_an_error_naming_the_file(synth):
    path = layout.summary_path(synth, RUN)
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(AnalysisError, match=rf"{path}"):
        load_summaries(layout.discover(synth).summaries)


def test_ledger_integer_columns_stay_integers(synth):
    # One run without the optional key `total_words_seen`: the others keep integers.
    path = layout.summary_path(synth, RUN)
    data = json.loads(path.read_text())
    del data["total_words_seen"]
    path.write_text(json.dumps(data))
    df = ledger_table(load_summaries(layout.discover(synth).summaries))
    assert str(df["steps"].dtype) in ("int64", "Int64")
    assert str(df["total_words_seen"].dtype) == "Int64", df.dtypes


def test_nan_scores_in_a_story_evaluation_name_the_file(synth):
    path = sorted((synth / "story_eval").glob("*.parquet"))[0]

    def nan_score(t):
        scores = t.column("teacher_score").to_numpy().copy()
        scores[1] = np.nan
        i = t.schema.get_field_index("teacher_score")
        return t.set_column(i, "teacher_score", pa.array(scores))

    rewrite(path, edit_table=nan_score)
    with pytest.raises(AnalysisError, match=rf"{path}.*teacher_score"):
        load_story_eval(layout.discover(synth).story_eval)


def test_a_float_step_column_is_an_error_naming_the_file(synth):
    path = layout.steps_path(synth, RUN)

    def float_steps(t):
        steps = t.column("step").to_numpy().astype(float)
        steps[0] = np.nan
        return t.set_column(t.schema.get_field_index("step"), "step", pa.array(steps))

    rewrite(path, edit_table=float_steps)
    with pytest.raises(SchemaError, match=rf"{path}: column 'step'"):
        load_steps([path])


def test_a_file_written_back_by_pandas_is_read(synth):
    path = layout.steps_path(synth, RUN)
    meta = read_metadata(path)
    df = pq.read_table(path).to_pandas()
    df["run_id"] = df["run_id"].astype("string[pyarrow]")
    df["stories"] = df["stories"].astype("int32")
    tbl = pa.Table.from_pandas(df, preserve_index=False)
    tbl = tbl.set_column(
        tbl.schema.get_field_index("run_id"), "run_id", tbl.column("run_id").cast(pa.large_string())
    )
    tbl = tbl.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    pq.write_table(tbl, path)
    assert pq.read_schema(path).field("run_id").type == pa.large_string()
    steps = load_steps([path])
    assert len(steps) == 5 and steps.run_id.iloc[0] == RUN


def test_seeds_of_one_setting_share_the_setting_hash_rl_writes():
    from storyrl.config import RLConfig
    from storyrl.rl.train import setting_hash

    teacher = {"backend": "openai", "model": "t", "sampling": {"temperature": 0.2, "seed": 42}}
    a = setting_hash(RLConfig(seed=42, threads=1), teacher)
    b = setting_hash(
        RLConfig(seed=43, threads=2), {**teacher, "sampling": {"seed": 43, "temperature": 0.2}}
    )
    assert a == b
    assert setting_hash(RLConfig(seed=44), {**teacher, "server": "http://127.0.0.1:5123/v1"}) == a
    assert setting_hash(RLConfig(seed=42, budget=500_000), teacher) != a
    assert setting_hash(RLConfig(seed=42), {**teacher, "model": "u"}) != a
