"""The RL run loop on a tiny real GPT-2: it learns a toy reward, writes its tables, and resumes
after SIGKILL to the same steps as an uninterrupted run."""

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
from storyrl.rl.config import RLConfig
from storyrl.rl.train import train
from storyrl.schemas import read_metadata, read_table

TOY = {"prompts": ["once upon a time"], "batch_size": 16, "budget": 100_000, "threads": 1,
       "sampling": {"max_new_tokens": 8}}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


def learned(run: Path, k: int = 5) -> tuple[float, float]:
    s = pd.read_parquet(run / "steps.parquet")["teacher_score_mean"].to_numpy()
    return float(s[:k].mean()), float(s[-k:].mean())


def test_ppo_learns_a_toy_reward(ckpt, tmp_path):
    cfg = RLConfig.model_validate({**TOY, "max_steps": 30, "ppo": {"lr": 3e-3, "init_kl_coef": 0.01}})
    train(ckpt, tmp_path / "run", cfg, ShareScorer())
    first, last = learned(tmp_path / "run")
    assert first < 0.2 and last > first + 0.4, (first, last)
    steps = read_table(tmp_path / "run" / "steps.parquet", "steps").to_pandas()
    assert steps["kl_coef"].iloc[0] == pytest.approx(0.01)
    assert np.isfinite(steps[["kl", "entropy", "ratio", "value_loss", "policy_entropy"]].to_numpy()).all()
    rollouts = read_table(tmp_path / "run" / "rollouts.parquet", "rollouts").to_pandas()
    assert len(rollouts) == 30 * 16 and rollouts["n_tokens"].between(1, 8).all()
    assert read_metadata(tmp_path / "run" / "rollouts.parquet")["run_id"] == "run"
    AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final")


def test_grpo_learns_a_toy_reward(ckpt, tmp_path):
    cfg = RLConfig.model_validate({**TOY, "algorithm": "grpo", "max_steps": 30,
                                   "group": {"lr": 3e-3, "num_generations": 8}})
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
from storyrl.rl.config import RLConfig
from storyrl.rl.train import train
cfg = RLConfig.model_validate_json({cfg!r})
train({ckpt!r}, sys.argv[1], cfg, ShareScorer())
"""

DETERMINISTIC = ["step", "budget_words", "teacher_score_mean", "kl", "kl_coef", "entropy", "ratio",
                 "value_loss", "policy_loss", "response_tokens_mean"]


def test_resume_after_sigkill_gives_the_same_run(ckpt, tmp_path):
    cfg = RLConfig.model_validate({**TOY, "max_steps": 14, "checkpoint_every": 150,
                                   "ppo": {"lr": 3e-3, "init_kl_coef": 0.05}})
    script = tmp_path / "run.py"
    script.write_text(RUNNER.format(tests=str(Path(__file__).parent), cfg=cfg.model_dump_json(), ckpt=str(ckpt)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}

    subprocess.run([sys.executable, str(script), str(tmp_path / "straight")], env=env, check=True,
                   capture_output=True)

    killed = tmp_path / "killed"
    for kill_after in (3, 8):  # killed twice, mid-step, then run to the end
        proc = subprocess.Popen([sys.executable, str(script), str(killed)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(list((killed / "parts" / "steps").glob("*.parquet"))) < kill_after:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (killed / "steps.parquet").exists()
    subprocess.run([sys.executable, str(script), str(killed)], env=env, check=True, capture_output=True)

    a = pd.read_parquet(tmp_path / "straight" / "steps.parquet")[DETERMINISTIC]
    b = pd.read_parquet(killed / "steps.parquet")[DETERMINISTIC]
    pd.testing.assert_frame_equal(a, b)
    cols = ["step", "sample", "continuation", "reward", "logprob_sum", "kl"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "straight" / "rollouts.parquet")[cols],
                                  pd.read_parquet(killed / "rollouts.parquet")[cols])
    for name in ("final", "checkpoints/300"):
        wa = AutoModelForCausalLM.from_pretrained(tmp_path / "straight" / name).state_dict()
        wb = AutoModelForCausalLM.from_pretrained(killed / name).state_dict()
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_grpo_resumes_after_sigkill(ckpt, tmp_path):
    """TRL's path resumes from the Trainer's checkpoints: steps 1..N once each, ledger consistent."""
    cfg = RLConfig.model_validate({**TOY, "algorithm": "grpo", "max_steps": 8, "batch_size": 8,
                                   "group": {"lr": 3e-3, "num_generations": 4}})
    script = tmp_path / "run.py"
    script.write_text(RUNNER.format(tests=str(Path(__file__).parent), cfg=cfg.model_dump_json(), ckpt=str(ckpt)))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(script), str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list((run / "parts" / "steps").glob("*.parquet"))) < 4:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([sys.executable, str(script), str(run)], env=env, check=True, capture_output=True)
    steps = pd.read_parquet(run / "steps.parquet")
    rollouts = pd.read_parquet(run / "rollouts.parquet")
    assert steps["step"].tolist() == list(range(1, 9))
    assert rollouts.groupby("step").size().tolist() == [8] * 8
    # the first batch's 8 prompts x 4 words, then 8 replies x 3 words a step
    assert steps["budget_words"].tolist() == [32 + 24 * k for k in range(1, 9)]
