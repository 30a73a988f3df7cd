"""Story evaluation on a tiny real GPT-2 with the real (heuristic) teacher, and the RL checkpoint
records it reads: every planned checkpoint exists after a run that stopped early."""

import json
import logging
import shutil

import pandas as pd
import pytest

from rl_toys import ShareScorer, make_checkpoint
from storyrl.analysis.load import load_story_eval
from storyrl.cli import main
from storyrl.config import RLConfig, StoryEvalConfig, planned_checkpoints
from storyrl.core.checkpoints import CHECKPOINT_INFO, RL_INFO
from storyrl.core.schemas import read_metadata, read_table
from storyrl.core.units import words_label
from storyrl.evaluate.stories import evaluate_stories
from storyrl.rl.train import train
from storyrl.stories.scoring import teacher_scorer

PROMPTS = ["once upon a time", "let me tell you a tale"]
RL = RLConfig.model_validate(
    {"prompts": PROMPTS, "batch_size": 4, "threads": 1, "sampling": {"max_new_tokens": 8}}
)
HEURISTIC = {"backend": "heuristic"}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt-20M")


def run_eval(ckpt, out, seed=42, n=10, **ids):
    cfg = StoryEvalConfig(n_stories=n, batch_size=4, seed=seed, threads=1)
    scorer = teacher_scorer(HEURISTIC, {}, RL.sampling.max_new_tokens, seed)
    return evaluate_stories(ckpt, out, cfg, RL, scorer, **ids)


def test_planned_checkpoints():
    assert planned_checkpoints(RLConfig()) == [k * 100_000 for k in range(1, 10)]
    assert planned_checkpoints(RLConfig(budget=950, checkpoint_every=100)) == list(
        range(100, 901, 100)
    )
    assert planned_checkpoints(RLConfig(budget=100, checkpoint_every=200)) == []


def test_story_eval_writes_scored_stories(ckpt, tmp_path):
    out = tmp_path / "stories.parquet"
    summary = run_eval(ckpt, out, model_id="pre-20M", pretrain_words=20_000_000)
    df = read_table(out, "rollouts").to_pandas()
    assert len(df) == summary["n"] == 10  # 3 generate calls: 4 + 4 + 2
    assert df["prompt"].tolist() == [PROMPTS[i % 2] for i in range(10)]
    assert df["sample"].tolist() == list(range(10))
    assert (
        (df["step"] == 0).all() and (df["budget_words"] == 0).all() and (df["run_id"] == "").all()
    )
    assert df["parsed"].all() and df["teacher_score"].between(0, 1).all()
    assert df["n_tokens"].between(1, 8).all()
    assert summary["teacher_score_mean"] == pytest.approx(df["teacher_score"].mean())
    assert summary["parsed_share"] == 1.0
    meta = read_metadata(out)
    assert meta["table"] == "rollouts"
    assert {
        k: meta[k]
        for k in ("model_id", "pretrain_words", "rl_words", "run_id", "n_stories", "seed")
    } == {
        "model_id": "pre-20M",
        "pretrain_words": 20_000_000,
        "rl_words": 0,
        "run_id": "",
        "n_stories": 10,
        "seed": 42,
    }
    assert meta["teacher"]["backend"] == "heuristic" and meta["prompts"] == PROMPTS
    loaded = load_story_eval([out])
    assert len(loaded) == 10
    assert set(loaded["pretrain_words"]) == {20_000_000} and set(loaded["rl_words"]) == {0}
    assert set(loaded["model_id"]) == {"pre-20M"}


def test_story_eval_is_seeded(ckpt, tmp_path):
    a = run_eval(ckpt, tmp_path / "a.parquet", seed=1)
    run_eval(ckpt, tmp_path / "b.parquet", seed=1)
    run_eval(ckpt, tmp_path / "c.parquet", seed=2)
    read = {k: pd.read_parquet(tmp_path / f"{k}.parquet") for k in "abc"}
    cols = ["prompt", "continuation", "teacher_reply", "teacher_score"]
    pd.testing.assert_frame_equal(read["a"][cols], read["b"][cols])
    assert read["a"]["continuation"].tolist() != read["c"]["continuation"].tolist()
    # no ids given, no record in the folder: the folder's name, read by load_story_eval
    assert a["model_id"] == "ckpt-20M" and a["pretrain_words"] is None
    assert load_story_eval([tmp_path / "a.parquet"])["pretrain_words"].iloc[0] == 20_000_000


def test_story_eval_reads_the_pretraining_record(ckpt, tmp_path):
    folder = shutil.copytree(ckpt, tmp_path / "milestone")
    (folder / CHECKPOINT_INFO).write_text(
        json.dumps(
            {"run_id": "pre", "milestone_words": 5_000_000, "step": 7, "words_seen": 5_000_100}
        )
    )
    summary = run_eval(folder, tmp_path / "s.parquet", n=2)
    assert summary["pretrain_words"] == 5_000_000 and summary["rl_words"] == 0
    assert load_story_eval([tmp_path / "s.parquet"])["pretrain_words"].iloc[0] == 5_000_000


# ------------------------------------------------------------------ RL checkpoint records
# ShareScorer replies are 3 words a story: the first batch's 4 x 4 prompt words + 12 words a step
# of 4 stories, so the ledger reads 28 after step 1 and 40 after step 2 (max_steps). Budget 50, a
# checkpoint every 5: planned 5..45; step 1 crosses 5 to 25 at once, step 2 crosses 30, 35 and
# 40, and 45 is never reached: it is a link to the final policy, not a copy of it.
EARLY = {
    "prompts": ["once upon a time"],
    "batch_size": 4,
    "threads": 1,
    "budget": 50,
    "checkpoint_every": 5,
    "max_steps": 2,
    "sampling": {"max_new_tokens": 6},
}
REACHED = {**{w: (1, 28) for w in (5, 10, 15, 20, 25)}, **{w: (2, 40) for w in (30, 35, 40)}}
NOT_REACHED = [45]


def check_records(run, ckpt, pretrain_words, reached=REACHED, not_reached=NOT_REACHED):
    assert planned_checkpoints(RLConfig.model_validate(EARLY)) == sorted([*reached, *not_reached])
    final = json.loads((run / "final" / RL_INFO).read_text())
    for words, (step, used) in reached.items():
        folder = run / "checkpoints" / words_label(words)
        assert (folder / "config.json").exists() and not folder.is_symlink(), folder
        info = json.loads((folder / RL_INFO).read_text())
        assert info.pop("tokenizer_sha256") == final["tokenizer_sha256"]
        assert info == {
            "run_id": "early",
            "step": step,
            "rl_words": used,
            "label_words": words,
            "pretrain_checkpoint": str(ckpt),
            "pretrain_words": pretrain_words,
        }, words
    for words in not_reached:
        folder = run / "checkpoints" / words_label(words)
        assert folder.is_symlink() and folder.resolve() == (run / "final").resolve(), folder
        assert (folder / "config.json").exists()
    assert final["label_words"] is None and final["rl_words"] == 40 and final["step"] == 2


@pytest.fixture(scope="module")
def early_run(ckpt, tmp_path_factory):
    run = tmp_path_factory.mktemp("rl") / "run"
    train(
        ckpt,
        run,
        RLConfig.model_validate(EARLY),
        ShareScorer(max_new_tokens=6),
        run_id="early",
        pretrain_words_seen=20_000_000,
    )
    return run


def test_rl_run_stopped_early_has_every_planned_checkpoint(ckpt, early_run):
    check_records(early_run, ckpt, 20_000_000)


def folder_bytes(folder) -> int:
    """Bytes of the files under `folder`, links not followed."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def test_checkpoints_a_run_stopped_short_of_are_links_and_one_warning(ckpt, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="storyrl.rl.run"):
        train(
            ckpt,
            run,
            RLConfig.model_validate({**EARLY, "max_steps": 1}),
            ShareScorer(max_new_tokens=6),
            run_id="early",
        )
    warned = [r.getMessage() for r in caplog.records if r.name == "storyrl.rl.run"]
    assert len(warned) == 1 and "before checkpoints 30, 35, 40, 45" in warned[0], warned
    links = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_symlink())
    copies = sorted(p.name for p in (run / "checkpoints").iterdir() if not p.is_symlink())
    assert links == ["30", "35", "40", "45"] and copies == ["10", "15", "20", "25", "5"]
    # Five saved policies, not nine: the links take no room.
    assert folder_bytes(run / "checkpoints") < 6 * folder_bytes(run / "final")
    info = json.loads((run / "checkpoints" / "35" / RL_INFO).read_text())
    assert info["rl_words"] == 28 and info["step"] == 1 and info["pretrain_words"] is None


def test_grpo_run_stopped_early_has_every_planned_checkpoint(ckpt, tmp_path):
    run = tmp_path / "run"
    cfg = RLConfig.model_validate({**EARLY, "algorithm": "grpo", "group": {"num_generations": 2}})
    train(
        ckpt,
        run,
        cfg,
        ShareScorer(max_new_tokens=6),
        run_id="early",
        pretrain_words_seen=20_000_000,
    )
    check_records(run, ckpt, 20_000_000)


def test_story_eval_of_a_checkpoint_the_run_stopped_short_of(early_run, tmp_path):
    summary = run_eval(early_run / "checkpoints" / "45", tmp_path / "s.parquet", n=2)
    assert summary["model_id"] == "early-45" and summary["run_id"] == "early"
    assert summary["rl_words"] == 40  # what the final policy spent


def test_the_official_pipeline_names_a_linked_checkpoint_by_its_label(early_run, tmp_path):
    from storyrl.evaluate.official import pipeline_checkpoint
    from storyrl.evaluate.zero_shot import model_results_dir

    label = early_run / "checkpoints" / "45"
    model = pipeline_checkpoint(label, tmp_path)  # what the pipeline loads and names results by
    assert model_results_dir(tmp_path, model) == model_results_dir(tmp_path, label)
    assert (model / "config.json").exists()


def test_story_eval_of_an_rl_checkpoint(early_run, tmp_path):
    summary = run_eval(early_run / "checkpoints" / "10", tmp_path / "s.parquet", n=2)
    assert summary["rl_words"] == 28 and summary["run_id"] == "early"
    assert summary["pretrain_words"] == 20_000_000 and summary["model_id"] == "early-10"
    df = load_story_eval([tmp_path / "s.parquet"])
    assert df[["rl_words", "pretrain_words", "run_id"]].drop_duplicates().values.tolist() == [
        [28, 20_000_000, "early"]
    ]
    assert (read_table(tmp_path / "s.parquet", "rollouts")["run_id"].to_pylist()) == ["early"] * 2


def test_cli_eval_stories(ckpt, tmp_path, capsys):
    out = tmp_path / "stories.parquet"
    rc = main(
        [
            "eval",
            "stories",
            "--model",
            str(ckpt),
            "--output",
            str(out),
            "--section",
            json.dumps({"n_stories": 6, "batch_size": 4, "threads": 1}),
            "--rl",
            RL.model_dump_json(),
            "--teacher",
            json.dumps(HEURISTIC),
            "--reward",
            "{}",
            "--teacher-cache",
            str(tmp_path / "cache.sqlite"),
            "--model-id",
            "m",
            "--pretrain-words",
            "20M",
            "--rl-words",
            "1M",
            "--run-id",
            "20M-seed42-base",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 6 and summary["rl_words"] == 1_000_000
    df = load_story_eval([out])
    assert len(df) == 6 and set(df["pretrain_words"]) == {20_000_000}
    assert set(df["rl_words"]) == {1_000_000} and set(df["run_id"]) == {"20M-seed42-base"}
    assert (tmp_path / "cache.sqlite").exists()
    with pytest.raises(SystemExit):
        main(
            [
                "eval",
                "stories",
                "--model",
                str(ckpt),
                "--output",
                str(out),
                "--section",
                '{"n_stories": 0}',
                "--rl",
                "{}",
                "--teacher",
                "{}",
                "--reward",
                "{}",
            ]
        )
