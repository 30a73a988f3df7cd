"""A shared folder is its own copy, checked against its card, and `share` touches only what it
wrote: an edit of a shared file never reaches the results, `analysis` refuses a shared file
that differs from its recorded sha256 (naming it), a clone of the dataset repository keeps its
`.git/`, LICENSE and notes, and a stray second zero-shot file of a model is refused."""

import logging
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis_synth import write_results  # noqa: E402
from storyrl.analysis import BadResults
from storyrl.analysis.load import load_eval
from storyrl.analysis.share import MARK, share
from storyrl.cli import main
from storyrl.core import layout
from storyrl.core.schemas import make_metadata, write_table

RUN = "90M-seed42-base"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety") / "results"
    write_results(root, n_steps=3, batch=4, n_stories=4, runs=[(20_000_000, 42), (90_000_000, 42)])
    return root


def halve_scores(path: Path) -> None:
    """Rewrite `path` in place (same file, truncated and written again), its scores halved."""
    tbl = pq.read_table(path)
    i = tbl.schema.get_field_index("teacher_score")
    half = pa.array([x / 2 for x in tbl.column(i).to_pylist()], type=pa.float64())
    pq.write_table(tbl.set_column(i, "teacher_score", half), path)


# ------------------------------------------------------------------ shared files are copies
def test_an_edit_of_a_shared_file_leaves_the_results_and_the_check_catches_it(
    results, tmp_path, capsys
):
    out = tmp_path / "share"
    original = layout.rollouts_path(results, RUN).read_bytes()
    share(results, out)
    edited = layout.rollouts_path(out, RUN)
    halve_scores(edited)
    assert layout.rollouts_path(results, RUN).read_bytes() == original

    rebuilt = tmp_path / "rebuilt"
    rc = main(["analysis", "all", "--results", str(out), "--output", str(rebuilt)])
    err = capsys.readouterr().err
    assert rc == 2, err[-1500:]
    assert f"rl/{RUN}/rollouts.parquet" in err and "sha256" in err and "--allow-modified" in err
    assert not rebuilt.exists()


def test_analysis_names_an_unlisted_file_and_goes_on_when_told(results, tmp_path, caplog):
    from storyrl.analysis.share_files import check_shared

    out = tmp_path / "share"
    share(results, out)
    assert check_shared(out) == []  # as written: every file matches its card
    halve_scores(layout.rollouts_path(out, RUN))
    shutil.copy(layout.eval_path(out, "ckpt-1M"), out / "eval" / "extra.parquet")
    with pytest.raises(BadResults, match=r"eval/extra\.parquet: not in the card"):
        check_shared(out)
    with caplog.at_level(logging.WARNING):
        changed = check_shared(out, allow_modified=True)
    assert changed == ["eval/extra.parquet", f"rl/{RUN}/rollouts.parquet"]
    assert f"rl/{RUN}/rollouts.parquet" in caplog.text
    assert check_shared(results) == []  # a results folder has no card: nothing to check


# ----------------------------------------------------------- share writes only its own files
def test_share_into_a_clone_updates_its_files_and_keeps_the_rest(results, tmp_path, capsys):
    from storyrl.analysis.share_files import MANIFEST, check_shared

    clone = tmp_path / "clone"
    share(results, clone)
    (clone / ".git" / "objects").mkdir(parents=True)
    (clone / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (clone / "LICENSE").write_text("CC-BY-4.0\n")
    (clone / "notes").mkdir()
    (clone / "notes" / "todo.md").write_text("ask the authors\n")
    halve_scores(layout.rollouts_path(clone, RUN))  # a shared file, stale: share owns it
    (clone / MANIFEST).unlink()  # as a folder shared before the manifest: its card tells

    fewer = tmp_path / "fewer"
    shutil.copytree(results, fewer)
    shutil.rmtree(fewer / "rl" / RUN)
    assert main(["share", "--results", str(fewer), "--out", str(clone)]) == 0
    assert (clone / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (clone / ".git" / "objects").is_dir()
    assert (clone / "LICENSE").read_text() == "CC-BY-4.0\n"
    assert (clone / "notes" / "todo.md").read_text() == "ask the authors\n"
    assert not (clone / "rl" / RUN).exists()  # share wrote it, and the run is gone
    assert MARK in (clone / "README.md").read_text()
    assert check_shared(clone) == []

    assert main(["share", "--results", str(results), "--out", str(clone)]) == 0
    assert layout.rollouts_path(clone, RUN).read_bytes() == (
        layout.rollouts_path(results, RUN).read_bytes()
    )
    assert (clone / "LICENSE").is_file() and (clone / ".git" / "HEAD").is_file()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README.md").write_text("my dataset\n")
    capsys.readouterr()
    assert main(["share", "--results", str(results), "--out", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert f"--out {foreign}" in err and "not a folder `storyrl share` wrote" in err, err
    assert sorted(p.name for p in foreign.iterdir()) == ["README.md"]


# --------------------------------------------------------- one file per model, task and kind
def test_a_stray_zero_shot_file_of_a_model_is_refused_naming_both(results, tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(results, folder)
    model = f"{RUN}-final"
    kept = layout.eval_path(folder, model)
    stray = folder / "eval" / f"{model} (old).parquet"
    shutil.copy(kept, stray)
    with pytest.raises(BadResults) as info:
        load_eval(layout.discover(folder).eval)
    msg = str(info.value)
    assert str(kept) in msg and str(stray) in msg and model in msg, msg


def test_aoa_files_of_several_runs_may_repeat_their_checkpoint_but_not_themselves(tmp_path):
    from storyrl.evaluate.aoa_score import score_rows

    pre = score_rows({"curve_fitness": 0.25, "n_words": 300}, "ckpt-90M", 90 * 10**6, 0)
    for seed in (42, 43):
        run = f"90M-seed{seed}-base"
        rows = pre + score_rows({"curve_fitness": 0.3, "n_words": 290}, f"{run}-final", 90**6, 1)
        meta = make_metadata("eval_scores", run_id=f"{run}-rl", source="official_pipeline")
        write_table(tmp_path / f"{run}-rl-aoa.official.parquet", "eval_scores", rows, meta)
    files = sorted(tmp_path.glob("*.parquet"))
    assert len(load_eval(files)) == 4
    stray = tmp_path / "90M-seed42-base-rl-aoa.official (old).parquet"
    shutil.copy(files[0], stray)
    with pytest.raises(BadResults, match="ckpt-90M.*aoa"):
        load_eval([*files, stray])
