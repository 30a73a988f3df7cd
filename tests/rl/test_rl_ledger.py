"""The interaction budget: the first batch's prompt words once, every teacher reply's words; stop
before passing."""

from pathlib import Path

import pandas as pd
import pytest

from rl_toys import ShareScorer, make_checkpoint
from storyrl.config import RLConfig, load
from storyrl.rl.ledger import Ledger
from storyrl.rl.train import train
from storyrl.stories.sampling import batch_prompts
from storyrl.testing import rl_train_args


def steps_until_stop(ledger: Ledger, prompts: list[str], replies: list[str]) -> int:
    while ledger.fits(prompts, replies):
        ledger.charge(prompts, replies, ["x"] * len(replies))
    return ledger.steps


def test_paper_budget_is_920_steps():
    # FACTS "Word budget": the first batch's 360 prompts x 16 words once (5,760), then 1,080 words
    # of teacher replies a step: 5,760 + 920 x 1,080 = 999,360 <= 1M, and a 921st step would pass.
    cfg = load(Path(__file__).parents[2] / "config" / "paper.yaml").rl
    prompts = batch_prompts(cfg.prompts, cfg.batch_size)
    ledger = Ledger(cfg.budget)
    assert ledger.cost(prompts, ["2 3 1"] * 360) == 5_760 + 1_080
    assert steps_until_stop(ledger, prompts, ["2 3 1"] * 360) == 920
    assert (ledger.prompt_words, ledger.teacher_words, ledger.used) == (5_760, 993_600, 999_360)
    assert ledger.stories == 331_200 and ledger.cost(prompts, ["2 3 1"] * 360) == 1_080
    assert not ledger.fits(prompts, ["2 3 1"] * 360)


def test_first_batch_prompts_charged_once_and_generated_words_apart():
    ledger = Ledger(100)
    assert not ledger.fits(["a b c"] * 40, [])  # 120 prompt words alone pass the budget
    ledger.charge(
        ["a b c", "a b c", "d e"], ["1 2 3", "0", "1"], ["one two", "three four five", ""]
    )
    assert (ledger.prompt_words, ledger.teacher_words, ledger.generated_words, ledger.used) == (
        8,
        5,
        5,
        13,
    )
    ledger.charge(["a b c", "a b c", "d e"], ["1 2", "0", "1"], ["", "", ""])  # prompts now free
    assert (ledger.prompt_words, ledger.teacher_words, ledger.used, ledger.steps) == (8, 9, 17, 2)
    s = ledger.summary(pretrain_words_seen=900_000_000, corpus_words=90_000_000)
    assert s["budget_words"] == 17 and s["total_words_seen"] == 900_000_017
    assert s["input_words"] == 90_000_017 and s["input_ok"]
    assert s["epochs"] == 10 and s["epochs_ok"] and s["generated_ok"]
    assert not Ledger(100).summary(900_000_000, 80_000_000)["epochs_ok"]


def test_run_stops_at_the_right_step(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    # 4 prompts x 4 words with the first step, then 4 replies x 3 words = 12 a step:
    # 16 + 12k <= 64 -> 4 steps
    cfg = RLConfig(
        prompts=["once upon a time"],
        batch_size=4,
        budget=64,
        checkpoint_every=30,
        threads=1,
        sampling={"max_new_tokens": 6},
    )
    summary = train(ckpt, tmp_path / "run", cfg, ShareScorer())
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    assert summary["steps"] == 4 and steps["step"].tolist() == [1, 2, 3, 4]
    assert steps["budget_words"].tolist() == [28, 40, 52, 64]
    assert (summary["prompt_words"], summary["teacher_words"]) == (16, 48)
    # checkpoints where the budget crossed 30 and 60
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["30", "60"]


def test_cli_rl_train(tmp_path):
    import json

    from storyrl.cli import main

    ckpt = make_checkpoint(tmp_path / "ckpt")
    section = {
        "prompts": ["once upon a time"],
        "batch_size": 4,
        "budget": 40,
        "threads": 1,
        "sampling": {"max_new_tokens": 6},
    }
    rc = main(
        rl_train_args(
            section,
            ckpt,
            tmp_path / "run",
            scorer="rl_toys:ShareScorer",
            pretrain_words="20M",
            corpus_words="2M",
        )
    )
    assert rc == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    # 16 + 12k <= 40: 2 steps
    assert (
        summary["steps"] == 2
        and summary["total_words_seen"] == 20_000_040
        and summary["epochs"] == 10
    )


def test_run_table_expands_seeds_and_variants():
    from storyrl.config import RunSpec, expand_runs

    base = load(Path(__file__).parents[2] / "config" / "paper.yaml").rl
    # The paper's values are the defaults, except the fields that say otherwise: the decoding
    # the teacher is shown (the paper keeps `</s>`), TRL 0.9.4's shared sampling seed, and the
    # authors' prompt set and skipping of failed steps.
    assert base == RLConfig(
        sampling_seed=0,
        sampling={"keep_special_tokens": True},
        max_prompts=344_827,
        on_step_error="skip",
    )
    runs = expand_runs(
        base,
        [
            RunSpec(checkpoint="900M", seeds=[42, 43, 44]),
            RunSpec(
                checkpoint="90M",
                variant="grpo",
                overrides={"algorithm": "grpo", "ppo": {"lr": 2e-6}},
            ),
        ],
    )
    assert list(runs) == [
        "900M-seed42-base",
        "900M-seed43-base",
        "900M-seed44-base",
        "90M-seed42-grpo",
    ]
    ckpt, cfg = runs["90M-seed42-grpo"][:2]
    assert (
        ckpt == 90_000_000
        and cfg.algorithm == "grpo"
        and cfg.ppo.lr == 2e-6
        and cfg.ppo.ppo_epochs == 4
    )
    assert runs["900M-seed43-base"].rl.seed == 43


def test_run_table_variant_overrides_teacher_and_reward():
    from storyrl.config import RunSpec, expand_runs

    runs = expand_runs(
        RLConfig(),
        [
            RunSpec(
                checkpoint="90M",
                variant="nolen",
                overrides={"reward": {"length_coef": 0}, "rl": {"batch_size": 8}},
            )
        ],
        teacher={"backend": "heuristic"},
        reward={"length_coef": 0.4, "weights": [1, 1, 1]},
    )
    run = runs["90M-seed42-nolen"]
    assert run.reward == {"length_coef": 0, "weights": [1, 1, 1]}
    assert run.teacher == {"backend": "heuristic"} and run.rl.batch_size == 8
    with pytest.raises(ValueError, match=r"\(90M-seed42-bad\): overrides: rl: batch_size"):
        expand_runs(
            RLConfig(),
            [
                RunSpec(
                    checkpoint="90M",
                    variant="bad",
                    overrides={"batch_size": 7, "algorithm": "grpo"},
                )
            ],
        )


def test_cli_rl_train_with_the_heuristic_teacher(tmp_path):

    from storyrl.cli import main

    ckpt = make_checkpoint(tmp_path / "ckpt")
    section = {
        "prompts": ["once upon a time"],
        "batch_size": 8,
        "budget": 100,
        "threads": 1,
        "sampling": {"max_new_tokens": 12},
    }
    rc = main(
        rl_train_args(
            section,
            ckpt,
            tmp_path / "run",
            teacher={"backend": "heuristic"},
            teacher_cache=tmp_path / "cache.sqlite",
        )
    )
    assert rc == 0
    rollouts = pd.read_parquet(tmp_path / "run" / "rollouts.parquet")
    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    assert rollouts["parsed"].all() and steps["budget_words"].iloc[-1] <= 100
    # the ledger charged exactly the replies' words, plus the first batch's 8 prompts once
    assert steps["budget_words"].iloc[-1] == 8 * 4 + sum(
        len(r.split()) for r in rollouts["teacher_reply"]
    )
