"""Several RL runs per GPU (config `rl_sharing`, storyrl/rl/pack.py): two runs trained as one pack
with one teacher server on localhost (tests/chat_server.py run as the server command) write the
same steps and stories as the same runs trained alone; the paper's plan in packs; the pinned
sampling settings of the `openai` teacher; a server that fails stops the pack naming its log."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from chat_server import seeded_reply
from helpers import ROOT, paper_weights, snakemake
from rl_toys import make_checkpoint
from storyrl.config import RLSharingConfig, TeacherConfig, load, rl_packs
from storyrl.stories.teacher import make_teacher

TESTS = Path(__file__).parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
# A few steps of a tiny GPT-2; budget and checkpoints out of the way.
RL = {
    "prompts": ["once upon a time"],
    "batch_size": 8,
    "budget": 100_000,
    "checkpoint_every": 100_000,
    "max_steps": 3,
    "threads": 1,
    "sampling": {"max_new_tokens": 8},
    "ppo": {"lr": 3e-3, "init_kl_coef": 0.05},
}
RUNS = {"a-seed42": 42, "b-seed43": 43}
TIMES = ["time_sample_s", "time_score_s", "time_update_s"]


def server_command(log: Path) -> str:
    return f"{sys.executable} {TESTS / 'chat_server.py'} --port {{port}} --log {log}"


def teacher(backend: str, **kw) -> dict:
    cfg = TeacherConfig(
        backend=backend,
        model="teacher-x",
        template=str(ROOT / "config/prompts/teacher_rubric.txt"),
        **kw,
    )
    return cfg.model_dump(mode="json")


def pack_run(tmp: Path, ckpt: Path, run_id: str, seed: int) -> dict:
    return {
        "run_id": run_id,
        "section": {**RL, "seed": seed},
        "teacher": teacher("vllm"),
        "reward": {},
        "checkpoint": str(ckpt),
        "output": str(tmp / run_id),
        "log": str(tmp / "logs" / f"{run_id}.log"),
        "teacher_cache": str(tmp / run_id / "teacher_cache.sqlite"),
    }


def storyrl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "storyrl.cli", *args],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        **kw,
    )


def pack_args(tmp: Path, ckpt: Path, sharing: dict) -> list[str]:
    args = ["rl", "pack", "--sharing", json.dumps(sharing), "--server-log", str(tmp / "server.log")]
    for run_id, seed in RUNS.items():
        args += ["--run", json.dumps(pack_run(tmp, ckpt, run_id, seed))]
    return args


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ckpt")


# --------------------------------------------------------------------------- the teacher's requests
def test_openai_teacher_pins_every_sampling_setting(server):
    # vllm serve fills what a request leaves out from the model's generation_config.json
    # (Llama 3.1: top_p 0.9); the offline engine and the paper sample with top_p 1.
    srv = server()
    t = make_teacher(
        TeacherConfig.model_validate({**teacher("openai"), "openai": {"base_url": srv.url}}), seed=7
    )
    t.score([PROMPT], ["a fox."])
    body = srv.requests[0]["body"]
    assert {k: body.get(k) for k in ("temperature", "top_p", "max_tokens", "seed")} == {
        "temperature": 0.2,
        "top_p": 1.0,
        "max_tokens": 6,
        "seed": 7,
    }
    assert t.identity["sampling"]["top_p"] == 1.0


def test_a_server_label_names_a_pack_server_whatever_its_port(server):
    a, b = server(), server()
    cfgs = [
        TeacherConfig.model_validate(
            {**teacher("openai"), "openai": {"base_url": s.url, "server_label": "pack"}}
        )
        for s in (a, b)
    ]
    ids = [make_teacher(c, seed=0).identity for c in cfgs]
    assert a.url != b.url and ids[0] == ids[1] and ids[0]["server"] == "pack"


# --------------------------------------------------------------------------- a pack vs. runs alone
def test_two_runs_sharing_one_teacher_server_give_the_same_steps_as_separate_runs(
    ckpt, tmp_path, server
):
    shared = tmp_path / "shared"
    sharing = {
        "runs_per_gpu": 2,
        "server": {"command": server_command(shared / "requests.jsonl"), "ready_timeout_s": 60},
    }
    out = storyrl(*pack_args(shared, ckpt, sharing), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:] + "".join(
        (shared / "logs" / f"{r}.log").read_text()[-2000:] for r in RUNS
    )

    # The same runs alone (side by side, to save time), each through `storyrl rl train` with the
    # openai teacher at a server of its own that answers the same function of the request.
    procs = []
    for run_id, seed in RUNS.items():
        srv = server(body_reply_fn=seeded_reply)
        run = pack_run(tmp_path / "alone", ckpt, run_id, seed)
        t = {**teacher("openai"), "openai": {"base_url": srv.url, "concurrency": 8}}
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "storyrl.cli",
                    "rl",
                    "train",
                    "--section",
                    json.dumps(run["section"]),
                    "--teacher",
                    json.dumps(t),
                    "--checkpoint",
                    str(ckpt),
                    "--output",
                    run["output"],
                    "--run-id",
                    run_id,
                    "--teacher-cache",
                    run["teacher_cache"],
                ],
                env=ENV,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]

    for run_id in RUNS:
        a, b = shared / run_id, tmp_path / "alone" / run_id
        steps = [pd.read_parquet(d / "steps.parquet").drop(columns=TIMES) for d in (a, b)]
        assert len(steps[0]) == 3
        pd.testing.assert_frame_equal(*steps)
        rolls = [pd.read_parquet(d / "rollouts.parquet") for d in (a, b)]
        pd.testing.assert_frame_equal(*rolls)
        # The same run, but not the same teacher server (the pack's label, a URL alone): the
        # summaries agree on everything else, the rubric included.
        sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
        ta, tb = sa.pop("teacher"), sb.pop("teacher")
        assert sa == sb and ta["template_sha256"] == tb["template_sha256"]
        assert "step 3" in (shared / "logs" / f"{run_id}.log").read_text()
    # The runs differ from each other (seeds), so a mix-up of replies between them would show;
    # the rewards follow the teacher's replies, which vary.
    ra, rb = (pd.read_parquet(shared / r / "rollouts.parquet") for r in RUNS)
    assert not ra["continuation"].equals(rb["continuation"]) and ra["reward"].nunique() > 1
    # One server for both runs, every request with the run's seed and the pinned settings.
    bodies = [json.loads(l) for l in (shared / "requests.jsonl").read_text().splitlines()]
    assert len(bodies) == 2 * 3 * 8
    assert sorted({b["seed"] for b in bodies}) == [42, 43]
    assert {(b["model"], b["temperature"], b["top_p"], b["max_tokens"]) for b in bodies} == {
        ("teacher-x", 0.2, 1.0, 6)
    }


def test_sigterm_reaches_every_run_which_saves_its_state(ckpt, tmp_path):
    sharing = {"runs_per_gpu": 2, "server": {"command": server_command(tmp_path / "r.jsonl")}}
    args = pack_args(tmp_path, ckpt, {**sharing})
    for i, a in enumerate(args):  # long runs, states by time only: only SIGTERM saves one
        if a == "--run":
            run = json.loads(args[i + 1])
            run["section"].update(max_steps=500, state_every_s=3600)
            args[i + 1] = json.dumps(run)
    proc = subprocess.Popen(
        [sys.executable, "-m", "storyrl.cli", *args],
        env=ENV,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 300
    while not all(len(list((tmp_path / r / "parts" / "steps").glob("*"))) >= 2 for r in RUNS):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 143
    for run_id in RUNS:
        assert (tmp_path / run_id / "state" / "state.pt").exists()
        assert "stopped by SIGTERM" in (tmp_path / "logs" / f"{run_id}.log").read_text()
    server_pid = [l for l in proc.stderr.read().splitlines() if "teacher server:" in l]
    assert server_pid  # the server was started, and the pack waited for it to stop:
    assert not running(str(tmp_path / "r.jsonl"))


def test_a_server_that_exits_stops_the_pack_naming_its_log(ckpt, tmp_path):
    cmd = f"{sys.executable} -c \"print('no GPU here'); raise SystemExit(3)\" {{port}}"
    out = storyrl(*pack_args(tmp_path, ckpt, {"server": {"command": cmd}}), timeout=120)
    assert out.returncode == 2
    assert "exited with status 3" in out.stderr and "server.log" in out.stderr
    assert "no GPU here" in out.stderr
    assert not (tmp_path / "logs").exists()  # no run started


def test_a_server_that_never_answers_times_out_and_sigterm_stops_the_wait(ckpt, tmp_path):
    mute = f'{sys.executable} -c "import time; time.sleep(120)" {{port}} {tmp_path}'
    out = storyrl(
        *pack_args(tmp_path, ckpt, {"server": {"command": mute, "ready_timeout_s": 1}}), timeout=120
    )
    assert (
        out.returncode == 2 and "did not answer" in out.stderr and "ready_timeout_s" in out.stderr
    )
    # A time limit while the server loads its weights: the pack stops at once, no run begun.
    server = rf"sleep\(120\) [0-9]+ {tmp_path}"  # the started server (the pack's argv has {{port}})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "storyrl.cli",
            *pack_args(tmp_path, ckpt, {"server": {"command": mute}}),
        ],
        env=ENV,
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not running(server):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    assert not running(server) and not (tmp_path / "logs").exists()


def running(pattern: str) -> bool:
    return bool(subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout)


# --------------------------------------------------------------------------- config and plan
def test_server_command_is_checked():
    with pytest.raises(ValidationError, match="--generation-config vllm"):
        RLSharingConfig.model_validate({"server": {"command": "vllm serve {model} --port {port}"}})
    with pytest.raises(ValidationError, match="unknown placeholder"):
        RLSharingConfig.model_validate({"server": {"command": "x --port {port} {gpus}"}})
    with pytest.raises(ValidationError, match="put {port} in it"):
        RLSharingConfig.model_validate({"server": {"command": "x --port 8000"}})
    with pytest.raises(ValidationError):
        RLSharingConfig.model_validate({"runs_per_gpu": 5})
    assert "--generation-config vllm" in RLSharingConfig().server.command


def paper(tmp_path: Path, **sharing) -> list[Path]:
    files = [ROOT / "config" / "paper.yaml", paper_weights(tmp_path)]
    if sharing:
        files.append(tmp_path / "share.yaml")
        files[-1].write_text(yaml.safe_dump({"rl_sharing": sharing}))
    return files


def test_packs_follow_the_plan_and_never_mix_teachers(tmp_path):
    cfg = load(*paper(tmp_path))
    ids = list(cfg.rl_plan())
    assert rl_packs(cfg.rl_plan(), 4) == [ids[:4], ids[4:]]
    assert rl_packs(cfg.rl_plan(), 3) == [ids[:3], ids[3:6], ids[6:]]
    other = tmp_path / "other.yaml"
    other.write_text(
        yaml.safe_dump(
            {
                "rl_runs": [
                    {"checkpoint": "20M"},
                    {
                        "checkpoint": "50M",
                        "variant": "big",
                        "overrides": {"teacher": {"model": "/elsewhere"}},
                    },
                    {"checkpoint": "90M"},
                ]
            }
        )
    )
    cfg = load(*paper(tmp_path), other)
    assert rl_packs(cfg.rl_plan(), 4) == [
        ["20M-seed42-base", "90M-seed42-base"],
        ["50M-seed42-big"],
    ]


def dry_run_jobs(tmp_path: Path, files: list[Path], *args: str) -> list[tuple[str, str]]:
    """(rule, its threads and resources lines) of every job a dry run plans."""
    out = snakemake(tmp_path, *args, "-n", "--configfile", *map(str, files)).stdout
    jobs, rule, seen = [], None, ""
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            rule, seen = line.split()[1][:-1], ""
        elif line.startswith("threads:") and rule:
            seen = line
        elif line.startswith("resources:") and rule:
            jobs.append((rule, f"{seen} {line}"))
            rule = None
    return jobs


def test_paper_plan_in_packs_of_four_is_two_gpu_jobs_placed_like_rl_jobs(tmp_path, monkeypatch):
    # Through the SLURM profile (planned without conda, as tests/slurm/test_profiles.py does).
    monkeypatch.setenv("STORYRL_SLURM_SDM", "none")
    files = paper(tmp_path, runs_per_gpu=4)
    jobs = dry_run_jobs(tmp_path, files, "--profile", str(ROOT / "profiles" / "slurm"))
    packs = [(r, res) for r, res in jobs if r.startswith("rl")]
    assert sorted(r for r, _ in packs) == ["rl_pack_1", "rl_pack_2"]
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    for _, res in packs:  # one GPU each, and the profile's threads and runtime of `rl`
        assert re.search(r"\bgpu=1\b", res) and f"threads: {prof['set-threads']['rl']} " in res, res
        assert re.search(rf"\bruntime={prof['set-resources']['rl']['runtime']}\b", res), res
    # A targeted build of one run's summary runs its pack (and only it).
    one = dry_run_jobs(tmp_path, files, "results/rl/900M-seed43-base/summary.json")
    assert [r for r, _ in one if r.startswith("rl")] == ["rl_pack_2"]


def test_the_servers_batched_tokens_cover_a_large_pack():
    # vLLM's scheduler refuses max_num_batched_tokens < max_num_seqs (2048 by default on many
    # GPUs): four runs of 720 stories are 2,880 sequences.
    from storyrl.rl.pack import server_argv

    sharing = RLSharingConfig(runs_per_gpu=4)
    argv = server_argv(sharing, TeacherConfig(backend="vllm"), 8000, 4 * 720)
    seqs = int(argv[argv.index("--max-num-seqs") + 1])
    assert seqs == 2880 and int(argv[argv.index("--max-num-batched-tokens") + 1]) >= seqs
    small = server_argv(sharing, TeacherConfig(backend="vllm"), 8000, 720)
    assert int(small[small.index("--max-num-batched-tokens") + 1]) == 8192
    with pytest.raises(ValidationError, match="needs `--max-num-batched-tokens"):
        RLSharingConfig(
            server={
                "command": "vllm serve m --port {port} --max-num-seqs {max_seqs} "
                "--generation-config vllm"
            }
        )
