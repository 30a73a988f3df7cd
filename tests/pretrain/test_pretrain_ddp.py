"""Data-parallel pretraining for real on CPU: torchrun with 2 processes (gloo) against one process
with the same global batch; rank-0-only side effects; SIGTERM to one rank stops both."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import pretrain_args, snakemake
from storyrl.config import PretrainJob
from storyrl.core.device import DeviceError
from storyrl.pretrain.train import check_launch
from tiny_jobs import MODEL as TINY_MODEL
from tiny_jobs import TRAINING

# No dropout: the two processes draw their dropout masks from other RNG streams than one process
# would, so only a deterministic model can be compared weight for weight.
MODEL = TINY_MODEL.model_copy(update={"dropout": 0.0})
MILESTONES = [2_000, 5_000, 8_000, 20_000]
LABELS = ("2K", "5K", "8K", "20K")


def _cmd(prepared: Path, root: Path, processes: int) -> list[str]:
    # Global batch 8 either way: one process accumulates 2 micro-batches of 4, two take one each.
    training = TRAINING.model_copy(update={"epochs": 0.2, "save_every": 30})
    job = PretrainJob(run_id="t", model=MODEL, training=training, milestones=MILESTONES, seed=7)
    launch = [sys.executable]
    if processes > 1:  # as the `pretrain` rule launches it for resources gpu=2
        launch += [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
        ]
    return [*launch, *pretrain_args(job, prepared, root / "work", root / "out")]


def _run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    return out.stderr


@pytest.fixture(scope="module")
def single(demo_prepared, tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    _run(_cmd(demo_prepared, root, 1))
    return root / "out"


def _info(ckpt: Path) -> dict:
    return json.loads((ckpt / "storyrl_checkpoint.json").read_text())


def _assert_same_checkpoints(a: Path, b: Path):
    for label in LABELS:
        assert _info(a / f"ckpt-{label}")["step"] == _info(b / f"ckpt-{label}")["step"], label
        wa, wb = (
            load_file(a / f"ckpt-{label}" / "model.safetensors"),
            load_file(b / f"ckpt-{label}" / "model.safetensors"),
        )
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5, msg=f"{label} {k}")


def test_two_processes_match_one_process_with_the_same_global_batch(
    demo_prepared, single, tmp_path
):
    err = _run(_cmd(demo_prepared, tmp_path, 2))
    _assert_same_checkpoints(single, tmp_path / "out")
    # Words and tokens per step come from the global batch, not from one process's share.
    for label, words in zip(LABELS, MILESTONES):
        info = _info(tmp_path / "out" / f"ckpt-{label}")
        assert info["milestone_words"] == words and info["tokens_seen"] == info["step"] * 8 * 32
    # Both processes trained (each saved its RNG state), rank 0 alone wrote and logged.
    last = max((tmp_path / "work").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert {p.name for p in last.glob("rng_state*")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert err.count("milestone 20K words at step") == 1, err[-3000:]
    assert err.count("on 2 process(es)") == 1, err[-3000:]
    assert not list(tmp_path.glob("work.stale-*"))


def _workers(agent: int) -> dict[int, int]:
    """The pids of the torchrun workers under `agent`, by rank (from their environment)."""
    pids = {}
    for proc in Path("/proc").iterdir():
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) != agent:
                continue
            env = dict(
                v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v
            )
        except (OSError, ValueError, IndexError):
            continue
        if b"RANK" in env:
            pids[int(env[b"RANK"])] = int(proc.name)
    return pids


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (SigCgt in /proc/<pid>/status)."""
    status = (Path("/proc") / str(pid) / "status").read_text()
    caught = int(next(l for l in status.splitlines() if l.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def test_sigterm_to_one_rank_stops_both_at_one_step_and_resumes(demo_prepared, single, tmp_path):
    work = tmp_path / "work"
    proc = subprocess.Popen(_cmd(demo_prepared, tmp_path, 2), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while len(workers := _workers(proc.pid)) < 2:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    # Rank 0 frozen, rank 1 cannot get past its first collective with it: whatever the load on
    # this machine, the signal arrives before the run ends. A SLURM time limit may reach the
    # ranks at different moments; here only rank 1 hears it.
    os.kill(workers[0], signal.SIGSTOP)
    while not _catches_sigterm(workers[1]):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    os.kill(workers[1], signal.SIGTERM)
    os.kill(workers[0], signal.SIGCONT)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode != 0 and err.count("stopped by SIGTERM at step") == 2, err[-3000:]
    steps = {
        int(line.split("stopped by SIGTERM at step ")[1].split(";")[0])
        for line in err.splitlines()
        if "stopped by SIGTERM at step" in line
    }
    assert len(steps) == 1, steps
    stop = steps.pop()
    saved = work / f"checkpoint-{stop}"
    assert {p.name for p in saved.glob("rng_state*")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not (tmp_path / "out").exists()  # nothing published by the stopped run
    err = _run(_cmd(demo_prepared, tmp_path, 2))
    assert f"resume from {saved}" in err, err[-3000:]
    _assert_same_checkpoints(single, tmp_path / "out")


def test_one_process_seeing_several_gpus_is_refused():
    with pytest.raises(DeviceError, match="one process sees 4 GPUs.*DataParallel.*torchrun"):
        check_launch(4, {})
    assert check_launch(4, {"WORLD_SIZE": "4"}) == 4
    assert check_launch(1, {}) == 1 and check_launch(0, {}) == 1


def _pretrain_shell(work: Path, *args: str) -> list[str]:
    out = snakemake(work, "-n", "-p", "--forceall", *args).stdout
    return [
        l.removeprefix("Shell command: ") for l in out.splitlines() if "storyrl.cli pretrain" in l
    ]


def test_one_pretrain_rule_launches_one_process_per_gpu(tmp_path):
    rules = snakemake(tmp_path, "--list-rules").stdout.split()
    assert "pretrain" in rules and not [r for r in rules if r.startswith("pretrain_")]
    (one,) = _pretrain_shell(tmp_path)
    assert one.startswith("python -m storyrl.cli pretrain")
    # A profile (or the command line) giving the rule 4 GPUs gets 4 processes, one per GPU.
    (four,) = _pretrain_shell(tmp_path, "--set-resources", "pretrain:gpu=4", "--resources", "gpu=4")
    assert four.startswith(
        "python -m torch.distributed.run --standalone --nproc_per_node 4 -m storyrl.cli pretrain"
    )
