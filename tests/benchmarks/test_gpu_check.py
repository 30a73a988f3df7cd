"""The GPU check's logic, run on CPU at tiny shapes (--smoke): every phase of the paper's code
paths runs through the project's own functions and lands in the JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
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
            "--pretrain-opts",
            "lr=0.001",
            "model.dropout=0.0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    phases = ("corpus", "pretrain", "pretrain_fast", "teacher", "teacher_ab", "ppo_after")
    for phase in (*phases, "teacher_packed", "ppo_before", "story_eval", "zero_shot", "pack2"):
        assert data[phase]["ok"] is True, data[phase]
    pre, fast = data["pretrain"], data["pretrain_fast"]
    assert pre["steps"] == data["sizes"]["pretrain_steps"] and pre["tokens_per_s_median"] > 0
    assert fast["opts"] == ["lr=0.001", "model.dropout=0.0"] and fast["tokens_per_s_median"] > 0
    assert data["corpus"]["vocab"] == data["sizes"]["vocab"]  # padded to the configured vocabulary
    teacher = data["teacher"]
    assert teacher["weights"] == "random" and teacher["params"] > 0
    # The rubric is cut to the target length (Llama 3's 353 tokens on the GPU).
    assert 0 <= teacher["rubric_tokens"] - teacher["rubric_tokens_target"] <= 3
    ab = data["teacher_ab"]
    lo, hi = data["sizes"]["story_tokens"]
    assert ab["stories"] == data["sizes"]["ppo_batch"]
    assert lo - 2 <= ab["story_tokens"]["min"] and ab["story_tokens"]["max"] <= hi + 2
    assert ab["shared"]["seconds"] > 0 and ab["full"]["seconds"] > 0
    assert ab["same_replies_share"] == 1.0  # fp32 on CPU: the same replies
    packed = data["teacher_packed"]
    assert packed["packed"]["seconds"] > 0 and packed["same_replies_share"] == 1.0
    after, before = data["ppo_after"], data["ppo_before"]
    assert after["teacher_share_prefix"] and not before["teacher_share_prefix"]
    assert after["batch"] == data["sizes"]["ppo_batch"]
    assert after["steps"] == data["sizes"]["ppo_steps"]
    assert min(after["sample_s"], after["teacher_s"], after["update_s"]) > 0
    assert data["story_eval"]["stories"] == data["sizes"]["stories"]
    assert data["zero_shot"]["items"] > 0 and len(data["zero_shot"]["tasks"]) == 7
    assert data["pack2"]["runs"] == 2 and data["pack2"]["pair_over_two_alone"] > 0
    assert out.with_suffix(".png").stat().st_size > 10_000  # the figure


def test_phase_over_its_cap_is_cut_and_recorded(tmp_path):
    """A phase that outlives its cap is stopped, says so, and the next phase still runs; one
    that no longer fits in the budget is skipped."""
    import time

    from common import Report

    rep = Report(tmp_path / "r.json", {}, budget_s=5)
    slow = rep.phase("slow", lambda: time.sleep(10), cap_s=0.5)
    assert slow["ok"] is False and "cut off" in slow["error"] and slow["wall_s"] < 3
    assert rep.phase("quick", lambda: {"x": 1}, cap_s=1)["x"] == 1
    assert rep.phase("big", lambda: {}, need_s=60)["skipped"]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["slow"]["ok"] is False and data["quick"]["ok"] and data["big"]["ok"] is None


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
