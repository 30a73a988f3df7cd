"""A tiny pretraining and a tiny PPO run started as the workflow starts them: the CLI in a
subprocess, the tracking section in STORYRL_TRACKING, stdout and stderr into one log file (a
rule's `> log 2>&1`). Shared by tests/training/test_tracking.py and test_progress.py. Also the
pretraining tests' tiny model and schedule (MODEL, TRAINING), which tests/pretrain/test_pretrain.py
and tests/training/test_run_lock.py share."""

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, pretrain_args
from storyrl.config import ModelConfig, PretrainJob, RLConfig, TrainingConfig

MODEL = ModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=32, dropout=0.1)
TRAINING = TrainingConfig(
    lr=3e-3,
    batch_size=8,
    micro_batch_size=4,
    epochs=1,
    log_every=5,
    save_every=15,
    keep_states=2,
    threads=1,
)

# About 40 optimizer steps on the demo corpus (conftest's demo_prepared): a few seconds.
PRETRAIN = PretrainJob(
    run_id="tiny",
    seed=7,
    milestones=[3_000],
    model=MODEL.model_copy(update={"dropout": 0.0}),
    training=TRAINING.model_copy(
        update={"micro_batch_size": 8, "epochs": 0.05, "save_every": 1000, "keep_states": 1}
    ),
)

PPO = RLConfig.model_validate(
    {
        "prompts": ["once upon a time"],
        "batch_size": 16,
        "budget": 100_000,
        "threads": 1,
        "max_steps": 4,
        "sampling": {"max_new_tokens": 8},
    }
)


def _env(tracking: dict) -> dict:
    # No W&B settings from the caller's shell: the config's defaults (offline) must do.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "TRACKIO_"))}
    paths = [str(ROOT), str(ROOT / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env.update(PYTHONPATH=os.pathsep.join(paths), STORYRL_TRACKING=json.dumps(tracking))
    return env


def _run(cmd: list[str], log: Path, tracking: dict, cwd: Path) -> str:
    with open(log, "w") as f:
        out = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(tracking), cwd=cwd)
    text = log.read_text()
    assert out.returncode == 0, text[-3000:]
    return text


def pretrain(prepared: Path, root: Path, tracking: dict, job: PretrainJob = PRETRAIN) -> str:
    """Pretrain into root/out (log.parquet, ckpt-*); the job's log text (also root/job.log)."""
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, *pretrain_args(job, prepared, root / "work", root / "out")]
    return _run(cmd, root / "job.log", tracking, root)


def rl(
    checkpoint: Path, root: Path, tracking: dict, cfg: RLConfig = PPO, run_id: str = "toy"
) -> str:
    """An RL run into root/run with the toy scorer (tests/rl_toys.py); the job's log text."""
    root.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "storyrl.cli",
        "rl",
        "train",
        "--section",
        cfg.model_dump_json(),
        "--checkpoint",
        str(checkpoint),
        "--output",
        str(root / "run"),
        "--run-id",
        run_id,
        "--scorer",
        "rl_toys:ShareScorer",
    ]
    return _run(cmd, root / "job.log", tracking, root)
