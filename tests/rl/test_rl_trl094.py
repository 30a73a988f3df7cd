"""Our PPO step against TRL 0.9.4 itself (the paper's stack), where a venv with it is at hand:
set STORYRL_TRL094_PYTHON to its python (recipe: shared/bench/paper_stack/README.md)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PAPER_PYTHON = os.environ.get("STORYRL_TRL094_PYTHON")


@pytest.mark.skipif(not PAPER_PYTHON, reason="STORYRL_TRL094_PYTHON not set (a trl 0.9.4 venv)")
def test_ppo_step_matches_trl_094():
    root = Path(__file__).parents[2]
    out = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "trl094_equivalence.py"),
            "--paper-python",
            PAPER_PYTHON,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert out.returncode == 0 and "MATCH" in out.stdout, out.stdout + out.stderr[-3000:]
