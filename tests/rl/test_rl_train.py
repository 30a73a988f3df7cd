"""The RL run loop on a tiny real GPT-2: it learns a toy reward, writes its tables, and resumes
after SIGKILL (from a state some steps old) or SIGTERM (state of the last step) to the same steps
as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from rl_toys import ShareScorer, make_checkpoint
from storyrl.config import RLConfig, load, state_due
from storyrl.core.schemas import read_metadata, read_table
from storyrl.rl.train import train

TOY = {
    "prompts": ["once upon a time"],
    "batch_size": 16,
    "budget": 100_000,
    "threads": 1,
    "sampling": {"max_new_tokens": 8},
}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


def learned(run: Path, k: int = 5) -> tuple[float, float]:
    s = pd.read_parquet(run / "steps.parquet")["teacher_score_mean"].to_numpy()
    return float(s[:k].mean()), float(s[-k:].mean())


def test_ppo_learns_a_toy_reward(ckpt, tmp_path):
    cfg = RLConfig.model_validate(
        {**TOY, "max_steps": 30, "ppo": {"lr": 3e-3, "init_kl_coef": 0.01}}
    )
    train(ckpt, tmp_path / "run", cfg, ShareScorer())
    first, last = learned(tmp_path / "run")
    assert first < 0.2 and last > first + 0.4, (first, last)
    steps = read_table(tmp_path / "run" / "steps.parquet", "steps").to_pandas()
    assert steps["kl_coef"].iloc[0] == pytest.approx(0.01)
    assert np.isfinite(
        steps[["kl", "entropy", "ratio", "value_loss", "policy_entropy"]].to_numpy()
    ).all()
    rollouts = read_table(tmp_path / "run" / "rollouts.parquet", "rollouts").to_pandas()
    assert len(rollouts) == 30 * 16 and rollouts["n_tokens"].between(1, 8).all()
    meta = read_metadata(tmp_path / "run" / "rollouts.parquet")
    assert meta["run_id"] == "run"
    # The checkpoint lies outside the working directory: its name and sha256, not its path.
    assert meta["checkpoint"] == "ckpt" and len(meta["checkpoint_sha256"]) == 64
    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")


def test_grpo_learns_a_toy_reward(ckpt, tmp_path):
    cfg = RLConfig.model_validate(
        {**TOY, "algorithm": "grpo", "max_steps": 30, "group": {"lr": 3e-3, "num_generations": 8}}
    )
    summary = train(ckpt, tmp_path / "run", cfg, ShareScorer())
    first, last = learned(tmp_path / "run")
    assert last > first + 0.2, (first, last)
    assert summary["steps"] == 30 and summary["teacher_words"] == 30 * 16 * 3
    steps = read_table(tmp_path / "run" / "steps.parquet", "steps").to_pandas()
    assert steps["step"].tolist() == list(range(1, 31))


RUNNER = """
import sys
sys.path.insert(0, {tests!r})
from rl_toys import ShareScorer
from storyrl.config import RLConfig, load, state_due
from storyrl.rl.train import train
cfg = RLConfig.model_validate_json({cfg!r})
train({ckpt!r}, sys.argv[1], cfg, ShareScorer())
"""

DETERMINISTIC = [
    "step",
    "budget_words",
    "teacher_score_mean",
    "kl",
    "kl_coef",
    "entropy",
    "ratio",
    "value_loss",
    "policy_loss",
    "response_tokens_mean",
]


RESUME = {
    **TOY,
    "max_steps": 14,
    "checkpoint_every": 150,
    "ppo": {"lr": 3e-3, "init_kl_coef": 0.05},
}
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}


def interrupt(script: Path, run: Path, after_parts: int, sig) -> int:
    """Start the run, send `sig` once `after_parts` steps have written their rows; its exit status."""
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while len(list((run / "parts" / "steps").glob("*.parquet"))) < after_parts:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, sig)
    return proc.wait()


def parts(run: Path) -> int:
    return len(list((run / "parts" / "steps").glob("*.parquet")))


def saved_step(run: Path) -> int:
    return torch.load(run / "state" / "state.pt", weights_only=False)["ledger"]["steps"]


@pytest.fixture(scope="module")
def straight(ckpt, tmp_path_factory):
    """The uninterrupted run that every interrupted one must reproduce."""
    tmp = tmp_path_factory.mktemp("straight")
    script = write_runner(tmp, ckpt, RLConfig.model_validate(RESUME))
    subprocess.run(
        [sys.executable, str(script), str(tmp / "run")], env=ENV, check=True, capture_output=True
    )
    return tmp / "run"


def write_runner(tmp_path, ckpt, cfg: RLConfig) -> Path:
    script = tmp_path / f"run_{cfg.algorithm}.py"
    script.write_text(
        RUNNER.format(
            tests=str(Path(__file__).parents[1]), cfg=cfg.model_dump_json(), ckpt=str(ckpt)
        )
    )
    return script


def assert_same_run(a: Path, b: Path) -> None:
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "steps.parquet")[DETERMINISTIC],
        pd.read_parquet(b / "steps.parquet")[DETERMINISTIC],
    )
    cols = ["step", "sample", "continuation", "reward", "logprob_sum", "kl"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "rollouts.parquet")[cols], pd.read_parquet(b / "rollouts.parquet")[cols]
    )
    for name in ("final", "checkpoints/300"):
        wa = AutoModelForCausalLM.from_pretrained(a / name).state_dict()
        wb = AutoModelForCausalLM.from_pretrained(b / name).state_dict()
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_after_sigkill_between_states_gives_the_same_run(ckpt, straight, tmp_path):
    # A state every 5 steps: killed at step 3 (no state yet: from scratch) and at step 7 or 8
    # (state of step 5: steps 6.. are redone), then run to the end.
    cfg = RLConfig.model_validate({**RESUME, "state_every": 5, "state_every_s": None})
    script, killed = write_runner(tmp_path, ckpt, cfg), tmp_path / "killed"
    interrupt(script, killed, 3, signal.SIGKILL)
    assert not (killed / "state").exists()
    interrupt(script, killed, 7, signal.SIGKILL)
    assert saved_step(killed) == 5 < parts(killed)
    assert not (killed / "steps.parquet").exists()
    subprocess.run(
        [sys.executable, str(script), str(killed)], env=ENV, check=True, capture_output=True
    )
    assert_same_run(straight, killed)  # one row per step, the redone steps' rows written once


def test_sigterm_saves_the_state_of_the_last_step_and_resumes(ckpt, straight, tmp_path):
    cfg = RLConfig.model_validate(RESUME)  # by time only: no state in a run of seconds...
    assert cfg.state_every is None and cfg.state_every_s >= 60
    script, run = write_runner(tmp_path, ckpt, cfg), tmp_path / "run"
    assert interrupt(script, run, 4, signal.SIGTERM) == 143
    assert saved_step(run) == parts(run) >= 4  # ...but SIGTERM saves after the step in flight
    subprocess.run(
        [sys.executable, str(script), str(run)], env=ENV, check=True, capture_output=True
    )
    assert_same_run(straight, run)


def test_paper_state_policy_bounds_the_states_written():
    """At paper scale a state is ~1.2 GB: a run of 920 steps at the measured ~6.5 s a step writes
    about ten, not one per step, and loses at most ~10 minutes to a kill."""
    cfg = load(Path(__file__).parents[2] / "config" / "paper.yaml").rl
    saved, last, gaps = 0, 0, []
    for step in range(1, 921):
        if state_due(cfg, step - last, (step - last) * 6.5):
            saved, gaps, last = saved + 1, gaps + [step - last], step
    assert saved <= 10 and max(gaps) * 6.5 <= 610
    assert state_due(RLConfig(state_every=3, state_every_s=None), 3, 0.0)
    assert not state_due(RLConfig(state_every=3, state_every_s=None), 2, 1e6)
    with pytest.raises(ValueError, match="state_every, state_every_s"):
        RLConfig(state_every=None, state_every_s=None)


def test_grpo_resumes_after_sigkill_and_sigterm(ckpt, tmp_path):
    """TRL's path resumes from the Trainer's checkpoints: steps 1..N once each, ledger consistent."""
    cfg = RLConfig.model_validate(
        {
            **TOY,
            "algorithm": "grpo",
            "max_steps": 8,
            "batch_size": 8,
            "state_every": 3,
            "state_every_s": None,
            "group": {"lr": 3e-3, "num_generations": 4},
        }
    )
    script, run = write_runner(tmp_path, ckpt, cfg), tmp_path / "run"
    interrupt(script, run, 4, signal.SIGKILL)  # from the state of step 3: step 4 is redone
    assert interrupt(script, run, 5, signal.SIGTERM) == 143
    latest = max((run / "trl").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert json.loads((latest / "ledger.json").read_text())["steps"] == parts(run) >= 5
    subprocess.run(
        [sys.executable, str(script), str(run)], env=ENV, check=True, capture_output=True
    )
    steps = pd.read_parquet(run / "steps.parquet")
    rollouts = pd.read_parquet(run / "rollouts.parquet")
    assert steps["step"].tolist() == list(range(1, 9))
    assert rollouts.groupby("step").size().tolist() == [8] * 8
    # the first batch's 8 prompts x 4 words, then 8 replies x 3 words a step
    assert steps["budget_words"].tolist() == [32 + 24 * k for k in range(1, 9)]
