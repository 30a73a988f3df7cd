"""The GPU check's logic, run on CPU at tiny shapes (--smoke): every phase of the paper's code
paths runs through the project's own functions and lands in the JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_smoke_run_fills_every_phase(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--smoke",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for phase in ("pretrain", "teacher", "ppo_fp32", "ppo_bf16", "story_eval", "zero_shot"):
        assert data[phase]["ok"] is True, data[phase]
    pre = data["pretrain"]
    assert pre["steps"] == data["sizes"]["pretrain_steps"] and pre["tokens_per_s_median"] > 0
    assert pre["vocab"] == data["sizes"]["vocab"]  # padded to the configured vocabulary
    assert data["teacher"]["weights"] == "random" and data["teacher"]["params"] > 0
    ppo = data["ppo_bf16"]
    assert data["ppo_fp32"]["precision"] == "fp32" and ppo["precision"] == "bf16"
    assert ppo["batch"] == data["sizes"]["ppo_batch"] and ppo["steps"] == data["sizes"]["ppo_steps"]
    assert min(ppo["sample_s"], ppo["teacher_s"], ppo["update_s"]) > 0
    assert data["story_eval"]["stories"] == data["sizes"]["stories"]
    assert data["zero_shot"]["items"] > 0 and len(data["zero_shot"]["tasks"]) == 7


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU refusal")
def test_full_check_refuses_to_run_without_a_gpu(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "x.json").exists()
