"""The interaction budget: prompt words once, every teacher reply's words; stop before passing."""

import pandas as pd
import pytest

from rl_toys import ShareScorer, make_checkpoint
from storyrl.rl.config import PAPER_PROMPT, RLConfig
from storyrl.rl.ledger import Ledger
from storyrl.rl.train import train


def steps_until_stop(ledger: Ledger, replies: list[str]) -> int:
    while ledger.fits(replies):
        ledger.charge(replies, ["x"] * len(replies))
    return ledger.steps


def test_paper_budget_arithmetic():
    # 16 prompt words once; 360 replies of 3 words = 1080 words a step: floor(999984 / 1080) = 925
    ledger = Ledger.start(1_000_000, [PAPER_PROMPT])
    assert ledger.prompt_words == 16
    assert steps_until_stop(ledger, ["2 3 1"] * 360) == 925
    assert ledger.used == 16 + 925 * 1080 <= 1_000_000
    assert not ledger.fits(["2 3 1"] * 360)
    # a few longer replies (as the paper's teacher sometimes wrote) give the paper's 920 steps
    replies = ["2 3 1"] * 354 + ["2 3 1 ."] * 6
    assert steps_until_stop(Ledger.start(1_000_000, [PAPER_PROMPT]), replies) == 920


def test_prompts_charged_once_and_generated_words_apart():
    ledger = Ledger.start(100, ["a b c", "a b c", "d e"])
    assert ledger.prompt_words == 5
    ledger.charge(["1 2 3", "0"], ["one two", "three four five"])
    assert (ledger.teacher_words, ledger.generated_words, ledger.used) == (4, 5, 9)
    s = ledger.summary(pretrain_words_seen=900_000_000, corpus_words=90_000_000)
    assert s["total_words_seen"] == 900_000_009
    assert s["input_words"] == 90_000_009 and s["input_ok"]
    assert s["epochs"] == 10 and s["epochs_ok"] and s["generated_ok"]
    assert not Ledger.start(100, ["a"]).summary(900_000_000, 80_000_000)["epochs_ok"]


def test_run_stops_at_the_right_step(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    # 4 prompt words + 4 replies x 3 words = 12 a step: 4 + 12k <= 64 -> 5 steps
    cfg = RLConfig(prompts=["once upon a time"], batch_size=4, budget=64, checkpoint_every=30, threads=1,
                   sampling={"max_new_tokens": 6})
    summary = train(ckpt, tmp_path / "run", cfg, ShareScorer())
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    assert summary["steps"] == 5 and steps["step"].tolist() == [1, 2, 3, 4, 5]
    assert steps["budget_words"].tolist() == [16, 28, 40, 52, 64]
    # checkpoints where the budget crossed 30 and 60
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["30", "60"]


def test_cli_rl_train(tmp_path):
    import json
    from storyrl.cli import main
    ckpt = make_checkpoint(tmp_path / "ckpt")
    section = {"prompts": ["once upon a time"], "batch_size": 4, "budget": 40, "threads": 1,
               "sampling": {"max_new_tokens": 6}}
    rc = main(["rl", "train", "--checkpoint", str(ckpt), "--output", str(tmp_path / "run"),
               "--section", json.dumps(section), "--scorer", "rl_toys:ShareScorer",
               "--pretrain-words", "20M", "--corpus-words", "2M"])
    assert rc == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["total_words_seen"] == 20_000_040 and summary["epochs"] == 10


def test_run_table_expands_seeds_and_variants():
    from storyrl.config import load
    from storyrl.rl.config import RunSpec, expand_runs
    from pathlib import Path
    base = load(Path(__file__).parents[1] / "config" / "paper.yaml").rl
    # The paper's values are the defaults, but for the decoding the teacher is shown (ours drops
    # special tokens; the paper keeps `</s>`).
    assert base == RLConfig(sampling={"keep_special_tokens": True})
    runs = expand_runs(base, [RunSpec(checkpoint="900M", seeds=[42, 43, 44]),
                              RunSpec(checkpoint="90M", variant="grpo",
                                      overrides={"algorithm": "grpo", "ppo": {"lr": 2e-6}})])
    assert list(runs) == ["900M-seed42-base", "900M-seed43-base", "900M-seed44-base", "90M-seed42-grpo"]
    ckpt, cfg = runs["90M-seed42-grpo"][:2]
    assert ckpt == 90_000_000 and cfg.algorithm == "grpo" and cfg.ppo.lr == 2e-6 and cfg.ppo.ppo_epochs == 4
    assert runs["900M-seed43-base"].rl.seed == 43


def test_run_table_variant_overrides_teacher_and_reward():
    from storyrl.rl.config import RunSpec, expand_runs
    runs = expand_runs(RLConfig(), [RunSpec(checkpoint="90M", variant="nolen",
                                            overrides={"reward": {"length_coef": 0},
                                                       "rl": {"batch_size": 8}})],
                       teacher={"backend": "heuristic"}, reward={"length_coef": 0.4, "weights": [1, 1, 1]})
    run = runs["90M-seed42-nolen"]
    assert run.reward == {"length_coef": 0, "weights": [1, 1, 1]}
    assert run.teacher == {"backend": "heuristic"} and run.rl.batch_size == 8
    with pytest.raises(ValueError, match="variant 'bad'"):
        expand_runs(RLConfig(), [RunSpec(checkpoint="90M", variant="bad", overrides={"batch_size": 7,
                                                                                       "algorithm": "grpo"})])


def test_cli_rl_train_with_the_heuristic_teacher(tmp_path):
    import json
    from storyrl.cli import main
    ckpt = make_checkpoint(tmp_path / "ckpt")
    section = {"prompts": ["once upon a time"], "batch_size": 8, "budget": 100, "threads": 1,
               "sampling": {"max_new_tokens": 12}}
    rc = main(["rl", "train", "--checkpoint", str(ckpt), "--output", str(tmp_path / "run"),
               "--section", json.dumps(section), "--teacher", json.dumps({"backend": "heuristic"}),
               "--teacher-cache", str(tmp_path / "cache.sqlite")])
    assert rc == 0
    rollouts = pd.read_parquet(tmp_path / "run" / "rollouts.parquet")
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    assert rollouts["parsed"].all() and steps["budget_words"].iloc[-1] <= 100
    # the ledger charged exactly the replies' words, plus the prompt once
    assert steps["budget_words"].iloc[-1] == 4 + sum(len(r.split()) for r in rollouts["teacher_reply"])
