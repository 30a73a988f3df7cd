"""Our vLLM code against the real vllm 0.30.0 package on this CPU host: the refusal's exception
class and the bisection it drives, the prompt-length boundary, EngineArgs and SamplingParams
from our keyword arguments, the pack's `vllm serve` command through vLLM's own parser and
scheduler check, the openai backend's request through vLLM's ChatCompletionRequest, and vLLM's
context-length HTTP 400 body. tests/vllm_real.py runs them in the vLLM venv (`make vllm-venv`:
.venv-vllm, or STORYRL_VLLM_PYTHON); skipped, saying so, where there is none, except under
STORYRL_REQUIRE_VLLM=1 (.ci/run), where that is an error."""

import json
import os
import subprocess

import pytest

from helpers import ROOT, vllm_python

CHECKS = [
    "refusal_is_caught",
    "exactly_max_model_len_is_not_sent",
    "engine_args_take_ours",
    "sampling_params_take_ours",
    "pack_server_argv_parses_and_schedules",
    "openai_request_is_a_vllm_chat_request",
    "context_length_400_is_vllms",
]

PYTHON, _missing = vllm_python()
pytestmark = pytest.mark.skipif(_missing is not None, reason=str(_missing))


@pytest.fixture(scope="module")
def report() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_TARGET_DEVICE": "cpu"}
    out = subprocess.run(
        [PYTHON, str(ROOT / "tests" / "vllm_real.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("VLLM_REAL_REPORT ")]
    assert out.returncode == 0 and lines, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads(lines[-1].split(" ", 1)[1])


def test_it_is_vllm_0_30(report):
    assert report["vllm_version"] == "0.30.0"


@pytest.mark.parametrize("name", CHECKS)
def test_against_real_vllm(report, name):
    assert report[name] == "ok", report[name]
