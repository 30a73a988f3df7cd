"""GPU jobs on a machine without a usable GPU stop at once and say why (this machine has none)."""

import os
import subprocess
import sys
import time

import pytest
import torch

from helpers import ROOT, TEST_CONFIG, paper_weights, snakemake
from storyrl.config import load

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")


def _commands(tmp):
    """The four GPU commands as the rules call them, with outputs under `tmp`."""
    tiny = "{}"
    return {
        "pretrain": [
            "pretrain",
            "--section",
            '{"run_id":"t","model":{},"training":{},"milestones":[1000],"seed":1}',
            "--tokens",
            f"{tmp}/t.bin",
            "--tokens-meta",
            f"{tmp}/t.json",
            "--tokenizer",
            f"{tmp}/tok",
            "--work-dir",
            f"{tmp}/work",
            "--checkpoint-dir",
            f"{tmp}/ckpts",
            "--log-parquet",
            f"{tmp}/log.parquet",
        ],
        "rl train": [
            "rl",
            "train",
            "--section",
            tiny,
            "--checkpoint",
            f"{tmp}/ckpt",
            "--output",
            f"{tmp}/rl",
        ],
        "eval stories": [
            "eval",
            "stories",
            "--model",
            f"{tmp}/ckpt",
            "--output",
            f"{tmp}/s.parquet",
            "--section",
            tiny,
            "--rl",
            tiny,
            "--teacher",
            tiny,
            "--reward",
            tiny,
        ],
        "eval zero-shot-suite": [
            "eval",
            "zero-shot-suite",
            "--model",
            f"{tmp}/ckpt",
            "--data-path",
            f"{tmp}/data",
            "--parquet",
            f"{tmp}/z.parquet",
            "--output-dir",
            f"{tmp}/official",
        ],
    }


@pytest.mark.parametrize("name", ["pretrain", "rl train", "eval stories", "eval zero-shot-suite"])
def test_gpu_command_without_gpu_stops_at_once_saying_why_and_writes_nothing(tmp_path, name):
    args = _commands(tmp_path)[name]
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "storyrl.cli", *args, "--require-gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    took = time.perf_counter() - start
    assert out.returncode != 0
    err = out.stderr
    assert f"{name}: this job needs a GPU and sees none" in err, err[-2000:]
    assert "0 CUDA device(s) visible" in err and f"torch {torch.__version__}" in err
    assert "built for CUDA" in err and "NVIDIA driver" in err and "allow_cpu" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a folder
    assert took < 60, took  # at start: imports only, no model or data loaded


def test_without_the_flag_the_same_command_runs_on_cpu(tmp_path):
    # The flag alone decides: without it the command gets past the check (and fails later on
    # its made-up inputs, with another message).
    out = subprocess.run(
        [sys.executable, "-m", "storyrl.cli", *_commands(tmp_path)["eval zero-shot-suite"]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert "needs a GPU" not in out.stderr


def _gpu_shell_lines(work, *configfiles):
    args = ["-n", "-p", "--forceall"]
    if configfiles:
        args += ["--configfile", *map(str, configfiles)]
    out = snakemake(work, *args).stdout
    lines = [l for l in out.splitlines() if "storyrl.cli" in l]
    pick = ("storyrl.cli pretrain", "rl train", "eval stories", "eval zero-shot-suite")
    return {p: [l for l in lines if p in l] for p in pick}


def test_paper_config_requires_a_gpu_in_every_gpu_rule_and_the_test_config_does_not(tmp_path):
    assert load(ROOT / "config" / "paper.yaml").compute.allow_cpu is False
    assert load(ROOT / "config" / "config.yaml").compute.allow_cpu is True
    assert load(TEST_CONFIG).compute.allow_cpu is True
    # The paper config with its placeholder paths set (teacher weights and rubric), as a user's
    # copy would have them.
    local = paper_weights(tmp_path)
    paper = _gpu_shell_lines(tmp_path / "paper", ROOT / "config" / "paper.yaml", local)
    for command, lines in paper.items():
        assert lines and all("--require-gpu" in l for l in lines), command
    for command, lines in _gpu_shell_lines(tmp_path / "test").items():
        assert lines and not any("--require-gpu" in l for l in lines), command
    # CPU-only commands never get the flag
    cpu = [
        l
        for l in snakemake(tmp_path / "test", "-n", "-p", "--forceall").stdout.splitlines()
        if "storyrl.cli tokens" in l or "storyrl.cli subset" in l
    ]
    assert cpu and not any("--require-gpu" in l for l in cpu)


def test_the_message_names_the_driver_when_nvidia_smi_knows_it(tmp_path):
    # A node with a driver but no device usable by torch (e.g. a driver older than torch's CUDA
    # build): nvidia-smi answers, and the message carries its driver version.
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 535.104.05\n")
    smi.chmod(0o755)
    code = "from storyrl.core.device import describe; print(describe())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"},
        timeout=120,
    )
    assert "NVIDIA driver 535.104.05" in out.stdout, out.stderr[-2000:]
