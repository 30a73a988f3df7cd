"""One writer per run folder, tried with real processes: a second `storyrl rl train` or
`storyrl pretrain` on a folder in use stops at once naming the holder's PID, and a holder killed
with SIGKILL leaves no lock behind."""

import os
import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT, pretrain_args
from rl_toys import ShareScorer, make_checkpoint
from storyrl.config import PretrainJob, RLConfig
from storyrl.rl.train import train
from storyrl.testing import rl_train_args
from tiny_jobs import MODEL, TRAINING

TOY = {
    "prompts": ["once upon a time"],
    "batch_size": 4,
    "budget": 100_000,
    "threads": 1,
    "max_steps": 2,
    "state_every": 1,
    "state_every_s": None,
    "sampling": {"max_new_tokens": 4},
}


def wait_for(path: Path, proc, timeout=240):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the first process ended ({proc.returncode})"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def rl_train(ckpt, run, scorer):
    return [
        sys.executable,
        "-m",
        "storyrl.cli",
        *rl_train_args(TOY, ckpt, run, scorer=f"rl_toys:{scorer}"),
    ]


def test_a_second_rl_writer_is_refused_and_a_killed_holder_leaves_no_lock(tmp_path):
    ckpt, run = make_checkpoint(tmp_path / "ckpt"), tmp_path / "run"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
        STORYRL_TOY_STARTED=str(tmp_path / "started"),
        STORYRL_TOY_GO=str(tmp_path / "go"),
    )
    first = subprocess.Popen(rl_train(ckpt, run, "HeldScorer"), env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(tmp_path / "started", first)  # inside its first step
        second = subprocess.run(
            rl_train(ckpt, run, "ShareScorer"), env=env, capture_output=True, text=True
        )
        assert second.returncode == 2, second.stderr[-2000:]
        err = second.stderr.strip().splitlines()[-1]
        assert err.startswith(f"storyrl: {run}: another process (PID {first.pid} ") and (
            "is writing this run folder" in err
        ), err
        assert first.poll() is None  # the holder runs on
    finally:
        first.kill()
        first.wait()
    # The kernel dropped the killed holder's lock: this process resumes the run.
    assert train(ckpt, run, RLConfig.model_validate(TOY), ShareScorer())["steps"] == 2


def test_a_second_pretraining_writer_is_refused(demo_prepared, tmp_path):
    job = PretrainJob(run_id="t", model=MODEL, training=TRAINING, milestones=[40_000], seed=7)
    work = tmp_path / "work"
    cmd = [sys.executable, *pretrain_args(job, demo_prepared, work, tmp_path / "out")]
    first = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    try:
        wait_for(work / "run_config.json", first)
        second = subprocess.run(
            [sys.executable, *pretrain_args(job, demo_prepared, work, tmp_path / "out2")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        alive = first.poll() is None
    finally:
        first.kill()
        first.wait()
    assert alive and second.returncode == 2, second.stderr[-2000:]
    err = second.stderr.strip().splitlines()[-1]
    assert err.startswith(f"storyrl: {work}: another process (PID {first.pid} "), err


def test_the_lock_file_follows_the_umask_like_every_other_file_of_the_run(tmp_path):
    from storyrl.training.run_lock import LOCK, run_lock

    old = os.umask(0o002)
    try:
        with run_lock(tmp_path / "run"):
            pass
    finally:
        os.umask(old)
    assert oct((tmp_path / "run" / LOCK).stat().st_mode & 0o777) == oct(0o664)
