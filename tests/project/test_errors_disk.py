"""Faults of the machine (read-only or full disk, a teacher that fails, a bad
--config) end in one `storyrl: <path>: <what>` line and exit 2, never a traceback, and nothing
half-written stays behind.

A full or read-only disk is a real tmpfs mounted in a private user+mount namespace
(`unshare -rm`), so the command meets the kernel's own ENOSPC / EROFS."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from chat_server import ChatServer  # noqa: E402
from rl_toys import make_checkpoint  # noqa: E402
from storyrl.cli import main
from storyrl.testing import rl_train_args

ROOT = Path(__file__).resolve().parents[2]


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=16k tmpfs $d"
    return (
        subprocess.run(["unshare", "-rm", "sh", "-c", probe], capture_output=True).returncode == 0
    )


needs_mount = pytest.mark.skipif(not _can_mount(), reason="no user+mount namespaces (unshare -rm)")


def storyrl_on_small_disk(disk: Path, args: list[str], size="16k", read_only=False):
    """Run `storyrl ARGS` with a fresh tmpfs of `size` mounted at `disk` (read-only if asked)."""
    disk.mkdir(parents=True, exist_ok=True)
    mount = f"mount -t tmpfs -o size={size} tmpfs '{disk}'"
    if read_only:
        mount += f" && mount -o remount,ro '{disk}'"
    cmd = " ".join(f"'{a}'" for a in [sys.executable, "-m", "storyrl.cli", *args])
    env = dict(os.environ, PYTHONPATH=f"{ROOT}:{os.environ.get('PYTHONPATH', '')}")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"{mount} && {cmd}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )


def assert_clean_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("storyrl"), last
    for n in needles:
        assert n in last, (n, last)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A text corpus whose subset Parquet (~100 KB) cannot fit in 16 KB."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(3000)) + "\n")
    return path


def subset_args(corpus, out: Path):
    return [
        "subset",
        "--section",
        json.dumps({"format": "text", "path": str(corpus), "fraction": 1.0}),
        "--path",
        str(corpus),
        "--output",
        str(out / "subset.parquet"),
        "--stats",
        str(out / "stats.json"),
    ]


@needs_mount
def test_subset_on_a_full_disk_names_the_file(tmp_path, corpus):
    disk = tmp_path / "disk"
    proc = storyrl_on_small_disk(disk, subset_args(corpus, disk / "out"))
    assert_clean_error(proc, str(disk / "out" / "subset.parquet"), "No space left on device")


@needs_mount
def test_subset_on_a_read_only_disk_names_the_folder(tmp_path, corpus):
    disk = tmp_path / "disk"
    proc = storyrl_on_small_disk(disk, subset_args(corpus, disk / "out"), read_only=True)
    assert_clean_error(proc, str(disk / "out"), "Read-only file system")


@needs_mount
def test_analysis_on_a_full_disk_names_the_file(tmp_path):
    from analysis_synth import write_results

    results = tmp_path / "results"
    write_results(
        results, n_steps=6, batch=6, n_stories=10, runs=[(20_000_000, 42), (90_000_000, 42)]
    )
    disk = tmp_path / "disk"
    proc = storyrl_on_small_disk(
        disk,
        [
            "analysis",
            "all",
            "--results",
            str(results),
            "--output",
            str(disk),
            "--section",
            '{"bootstrap": 20}',
        ],
    )
    assert_clean_error(proc, str(disk), "No space left on device")
    # Whatever was written is complete: no temporary folders are left.
    assert not [p for p in disk.rglob("*.tmp")]


def _stories(tmp_path, n=40) -> Path:
    path = tmp_path / "stories.parquet"
    pd.DataFrame(
        {
            "prompt": ["Once upon a time,"] * n,
            "continuation": [f" a fox number {i} lived in a wood." for i in range(n)],
        }
    ).to_parquet(path)
    return path


@needs_mount
def test_teacher_score_checks_its_output_before_it_asks_the_teacher(tmp_path):
    srv = ChatServer(reply_fn=lambda m: "1 2 3")
    try:
        disk = tmp_path / "disk"
        section = {
            "teacher": {
                "backend": "openai",
                "model": "t",
                "openai": {"base_url": srv.url, "retries": 0},
            }
        }
        proc = storyrl_on_small_disk(
            disk,
            [
                "teacher",
                "score",
                "--stories",
                str(_stories(tmp_path)),
                "--output",
                str(disk / "scores.parquet"),
                "--section",
                json.dumps(section),
            ],
            read_only=True,
        )
        assert_clean_error(proc, str(disk), "Read-only file system")
        assert srv.requests == []  # not one paid teacher call for an output it cannot write
    finally:
        srv.close()


@needs_mount
def test_teacher_score_on_a_full_disk_names_the_file(tmp_path):
    disk = tmp_path / "disk"
    proc = storyrl_on_small_disk(
        disk,
        [
            "teacher",
            "score",
            "--stories",
            str(_stories(tmp_path, 2000)),
            "--output",
            str(disk / "scores.parquet"),
        ],
        size="8k",
    )
    assert_clean_error(proc, str(disk / "scores.parquet"), "No space left on device")


def test_teacher_failure_in_rl_train_is_one_line_and_exit_2(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    srv = ChatServer(mode="garbage_text")
    try:
        section = {
            "prompts": ["once upon a time"],
            "batch_size": 4,
            "budget": 10_000,
            "threads": 1,
            "max_steps": 2,
            "sampling": {"max_new_tokens": 4},
        }
        teacher = {"backend": "openai", "model": "t", "openai": {"base_url": srv.url, "retries": 0}}
        rc = main(rl_train_args(section, ckpt, tmp_path / "run", teacher=teacher))
    finally:
        srv.close()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert err.startswith("storyrl rl train:") and str(tmp_path / "run") in err, err


@pytest.mark.parametrize(
    "text, needle", [("analysis: {bootstrap: [1,\n", "line"), (None, "does not exist")]
)
def test_analysis_all_config_errors_name_the_file(tmp_path, capsys, text, needle):
    conf = tmp_path / "my config.yaml"
    if text is not None:
        conf.write_text(text)
    rc = main(
        [
            "analysis",
            "all",
            "--results",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
            "--config",
            str(conf),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2 and str(conf) in err and needle in err, err
