"""Every vLLM path of the paper's setup on the real vLLM 0.30 engine (PyPI's CPU build, in the
venv of `make vllm-venv`), with a tiny Llama chat model built here:

- an RL pack: `storyrl rl pack` starts `vllm serve` from `rl_sharing.server.command`, two tiny
  runs score through it, an over-long story is one failed reply, and the server and its engine
  process are gone when the pack ends, on success and on failure;
- tests/vllm_engine.py: the offline backend (scores, seeded replies, the refusal's bisection,
  the max_model_len boundary), `storyrl teacher score` with a Jinja2 rubric and `join: concat`,
  `storyrl eval stories`, and the second judge (`storyrl teacher agree`) on the pack's runs.

Skipped, saying so, without the venv, except under STORYRL_REQUIRE_VLLM=1 (.ci/run), where that
is an error."""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import ROOT, vllm_python
from rl_toys import make_checkpoint
from storyrl.rl.pack import tail
from tiny_chat import build_tiny_chat_model

PYTHON, _missing = vllm_python()
pytestmark = pytest.mark.skipif(_missing is not None, reason=str(_missing))

# vLLM on a CPU: a 1 GiB KV cache (its default takes gpu_memory_utilization x RAM) and no
# compilation (VLLM_CPU_CI_ENV).
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "PATH": f"{Path(PYTHON).parent}{os.pathsep}{os.environ['PATH']}",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_CPU_CI_ENV": "1",
}
SHORT = ["once upon a time", "there lived a king", "far away in a land"]
# Far past the teacher's max_model_len with the rubric (about 2,100 of its tokens): vLLM's HTTP
# 400 for this story alone.
LONG = "once upon a time " * 60
RL = {
    "batch_size": 4,
    "budget": 100_000,
    "checkpoint_every": 100_000,
    "max_steps": 2,
    "threads": 1,
    "sampling": {"max_new_tokens": 8},
    "ppo": {"lr": 3e-3, "init_kl_coef": 0.05},
}
RUNS = {"a-seed42": (42, [*SHORT, LONG]), "b-seed43": (43, SHORT[:1])}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("vllm_engine")
    # head size 32: vLLM's CPU attention takes no smaller
    build_tiny_chat_model(work / "teacher", [*SHORT], hidden_size=64, heads=2)
    make_checkpoint(work / "student", n_positions=320)
    return work


def teacher(work: Path) -> dict:
    return {
        "backend": "vllm",
        "model": str(work / "teacher"),
        "max_failure_share": 1.0,  # a tiny random model's replies hold no scores
        "vllm": {"dtype": "float32", "max_model_len": 1024, "gpu_memory_utilization": 0.2},
    }


def pack(work: Path, name: str, runs: dict, checkpoint: Path) -> tuple[subprocess.Popen, Path]:
    out = work / name
    argv = [PYTHON, "-m", "storyrl.cli", "rl", "pack", "--server-log", str(out / "server.log")]
    argv += ["--sharing", json.dumps({"runs_per_gpu": 2, "server": {"ready_timeout_s": 900}})]
    for run_id, (seed, prompts) in runs.items():
        run = {
            "run_id": run_id,
            "section": {**RL, "seed": seed, "prompts": prompts},
            "teacher": teacher(work),
            "checkpoint": str(checkpoint),
            "output": str(out / run_id),
            "log": str(out / "logs" / f"{run_id}.log"),
        }
        argv += ["--run", json.dumps(run)]
    # Its own session: every process the pack starts (the server, its engine, the runs) is in
    # it, so what is left of it afterwards is what the pack failed to stop.
    proc = subprocess.Popen(
        argv, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    return proc, out


def session(sid: int) -> list[str]:
    """The command lines of the live processes of session `sid`."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            left.append(cmd)
    return left


def finish(proc: subprocess.Popen, timeout: int) -> tuple[int, str, list[str]]:
    """The pack's exit status, its output, and what is left of its session a moment later."""
    out, _ = proc.communicate(timeout=timeout)
    time.sleep(1)
    return proc.returncode, out, session(proc.pid)


def server_pid(log: str) -> int:
    found = re.findall(r"teacher server: pid (\d+)", log)
    assert len(found) == 1, log[-3000:]
    return int(found[0])


@pytest.fixture(scope="module")
def packed(work):
    t0 = time.perf_counter()
    status, log, left = finish(*pack(work, "pack", RUNS, work / "student")[:1], timeout=1200)
    print(f"\npack with vllm serve: {time.perf_counter() - t0:.0f} s")
    return status, log, left


def test_a_pack_scores_two_runs_through_the_real_vllm_server(work, packed):
    status, log, _ = packed
    runs = {r: work / "pack" / r for r in RUNS}
    assert status == 0, log[-4000:] + "".join(
        tail(work / "pack" / "logs" / f"{r}.log") for r in RUNS
    )
    server_log = (work / "pack" / "server.log").read_text()
    assert 'POST /v1/chat/completions HTTP/1.1" 200' in server_log, server_log[-3000:]
    for run_id, folder in runs.items():
        steps = pd.read_parquet(folder / "steps.parquet")
        stories = pd.read_parquet(folder / "rollouts.parquet")
        assert steps.step.tolist() == [1, 2] and len(stories) == 8, (run_id, steps, stories)
        answered = stories[stories.teacher_reply.str.len() > 0]
        assert len(answered) == (6 if run_id == "a-seed42" else 8), stories.teacher_reply


def test_an_over_long_story_is_one_failed_reply(work, packed):
    steps = {r: pd.read_parquet(work / "pack" / r / "steps.parquet") for r in RUNS}
    # Run a's fourth prompt is past max_model_len: one story a step; run b's never.
    assert steps["a-seed42"].teacher_failed_calls.tolist() == [1, 1]
    assert steps["b-seed43"].teacher_failed_calls.tolist() == [0, 0]
    stories = pd.read_parquet(work / "pack" / "a-seed42" / "rollouts.parquet")
    failed = stories[stories.teacher_reply == ""]
    assert (failed.prompt == LONG).all() and len(failed) == 2, stories[["prompt", "teacher_reply"]]
    server_log = (work / "pack" / "server.log").read_text()
    assert 'POST /v1/chat/completions HTTP/1.1" 400' in server_log


def test_the_server_is_stopped_by_its_pid_when_the_pack_ends(packed):
    status, log, left = packed
    pid = server_pid(log)
    assert not Path(f"/proc/{pid}").exists() and left == [], left


def test_the_server_is_stopped_when_a_run_fails(work, packed):
    # A run whose checkpoint is not there fails at once, with the server up: the pack fails
    # and stops the server and its engine.
    t0 = time.perf_counter()
    proc, out = pack(work, "failing", {"a-seed42": RUNS["a-seed42"]}, work / "no-such-ckpt")
    status, log, left = finish(proc, timeout=1200)
    print(f"\nfailing pack: {time.perf_counter() - t0:.0f} s")
    assert status == 1 and "a-seed42 failed" in log, log[-3000:]
    assert "teacher server ready" in log, log[-3000:]
    assert not Path(f"/proc/{server_pid(log)}").exists() and left == [], left


@pytest.fixture(scope="module")
def report(work, packed) -> dict:
    # The agreement judge re-scores the pack's runs: their rollouts are in work/pack.
    assert packed[0] == 0, "the pack failed: see test_a_pack_scores_..."
    t0 = time.perf_counter()
    out = subprocess.run(
        [PYTHON, str(ROOT / "tests" / "vllm_engine.py"), str(work)],
        capture_output=True,
        text=True,
        env={**ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},  # the engine in this process
        timeout=1200,
    )
    print(f"\ntests/vllm_engine.py: {time.perf_counter() - t0:.0f} s")
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("VLLM_ENGINE_REPORT ")]
    assert out.returncode == 0 and lines, out.stdout[-2000:] + out.stderr[-3000:]
    got = json.loads(lines[-1].split(" ", 1)[1])
    print(json.dumps(got["seconds"]))
    return got


CHECKS = [
    "offline_engine_scores_and_seeded_replies_repeat",
    "refusal_bisects_to_the_one_story",
    "exactly_max_model_len_is_refused_and_not_sent",
    "teacher_score_cli_jinja2_template_and_concat",
    "eval_stories_cli_scores_with_the_engine",
    "agreement_judge_on_vllm_rescores_the_pack_runs",
]


def test_it_is_vllm_0_30(report):
    assert report["vllm_version"] == "0.30.0"


@pytest.mark.parametrize("name", CHECKS)
def test_on_the_real_engine(report, name):
    assert report[name] == "ok", report[name]


def test_every_check_of_the_script_is_listed():
    text = (ROOT / "tests" / "vllm_engine.py").read_text()
    assert re.findall(r"@check\ndef (\w+)", text) == CHECKS
