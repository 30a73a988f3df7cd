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
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import ROOT, vllm_python
from rl_toys import make_checkpoint
from storyrl.rl.pack import tail
from storyrl.testing import build_tiny_chat_model

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


def start(work: Path, name: str, argv: list[str], env: dict) -> subprocess.Popen:
    """`argv` with its output in WORK/NAME.out, in a session of its own: every process it
    starts (a server, its engine, the runs) is in that session, so what is left of it
    afterwards is what it failed to stop."""
    with open(work / f"{name}.out", "w") as out:
        return subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def pack(work: Path, name: str, runs: dict, checkpoint: Path) -> subprocess.Popen:
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
    return start(work, name, argv, ENV)


def sessions() -> dict[int, list[str]]:
    """The command lines of the live processes, by session id."""
    by_sid: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            by_sid.setdefault(int(fields[3]), []).append(cmd)
    return by_sid


def watch(work: Path, procs: dict, on_end, t0: float) -> dict:
    """Wait for every process; for each: its exit status, its output, the processes of its
    session while it ran and what is left of them a moment after it ended, its seconds.
    `on_end(name, status)` is called as each one ends."""
    seen = {name: set() for name in procs}
    ended, deadline = {}, time.monotonic() + 1500
    while len(ended) < len(procs) and time.monotonic() < deadline:
        live = sessions()
        for name, proc in procs.items():
            if name in ended:
                continue
            seen[name].update(live.get(proc.pid, []))
            if proc.poll() is not None:
                ended[name] = time.perf_counter() - t0
                on_end(name, proc.returncode)
        time.sleep(0.5)
    for name, proc in procs.items():
        if name not in ended:  # past the deadline: the tests' assertions say which
            os.killpg(proc.pid, signal.SIGKILL)
            ended[name] = time.perf_counter() - t0
    time.sleep(1)
    got, live = {}, sessions()
    for name, proc in procs.items():
        status = proc.wait(timeout=10)
        print(f"\n{name}: {ended[name]:.0f} s")
        got[name] = {
            "status": status,
            "log": (work / f"{name}.out").read_text(errors="replace"),
            "seen": seen[name],
            "left": live.get(proc.pid, []),
        }
    return got


def engine_ran(got: dict) -> bool:
    """vLLM's engine core ran as a process of its own (`vllm serve` spawns it)."""
    return any("EngineCore" in cmd for cmd in got["seen"])


def server_pid(log: str) -> int:
    found = re.findall(r"teacher server: pid (\d+)", log)
    assert len(found) == 1, log[-3000:]
    return int(found[0])


@pytest.fixture(scope="module")
def done(work) -> dict:
    """The two packs and tests/vllm_engine.py, started together (separate processes: 2 cores
    are better used so). The script's agreement check waits for WORK/pack.done, written here
    once the first pack has ended: it re-scores that pack's runs."""
    t0 = time.perf_counter()
    # A run whose checkpoint is not there fails at once, with the server up: that pack fails.
    procs = {
        "pack": pack(work, "pack", RUNS, work / "student"),
        "failing": pack(work, "failing", {"a-seed42": RUNS["a-seed42"]}, work / "no-such-ckpt"),
        # the engine in the script's own process
        "script": start(
            work,
            "script",
            [PYTHON, str(ROOT / "tests" / "vllm_engine.py"), str(work)],
            {**ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
        ),
    }

    def on_end(name: str, status: int) -> None:
        if name == "pack":
            (work / "pack.done").write_text(str(status))

    return watch(work, procs, on_end, t0)


def test_a_pack_scores_two_runs_through_the_real_vllm_server(work, done):
    runs = {r: work / "pack" / r for r in RUNS}
    assert done["pack"]["status"] == 0, done["pack"]["log"][-4000:] + "".join(
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


def test_an_over_long_story_is_one_failed_reply(work, done):
    steps = {r: pd.read_parquet(work / "pack" / r / "steps.parquet") for r in RUNS}
    # Run a's fourth prompt is past max_model_len: one story a step; run b's never.
    assert steps["a-seed42"].teacher_failed_calls.tolist() == [1, 1]
    assert steps["b-seed43"].teacher_failed_calls.tolist() == [0, 0]
    stories = pd.read_parquet(work / "pack" / "a-seed42" / "rollouts.parquet")
    failed = stories[stories.teacher_reply == ""]
    assert (failed.prompt == LONG).all() and len(failed) == 2, stories[["prompt", "teacher_reply"]]
    server_log = (work / "pack" / "server.log").read_text()
    assert 'POST /v1/chat/completions HTTP/1.1" 400' in server_log


def test_the_server_is_stopped_by_its_pid_when_the_pack_ends(done):
    got = done["pack"]
    assert engine_ran(got), got["seen"]
    assert not Path(f"/proc/{server_pid(got['log'])}").exists() and got["left"] == [], got["left"]


def test_the_server_is_stopped_when_a_run_fails(done):
    got = done["failing"]
    assert got["status"] == 1 and "a-seed42 failed" in got["log"], got["log"][-3000:]
    assert "teacher server ready" in got["log"] and engine_ran(got), got["log"][-3000:]
    assert not Path(f"/proc/{server_pid(got['log'])}").exists() and got["left"] == [], got["left"]


@pytest.fixture(scope="module")
def report(done) -> dict:
    got = done["script"]
    lines = [ln for ln in got["log"].splitlines() if ln.startswith("VLLM_ENGINE_REPORT ")]
    assert got["status"] == 0 and lines, got["log"][-5000:]
    report = json.loads(lines[-1].split(" ", 1)[1])
    print(json.dumps(report["seconds"]))
    return report


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
