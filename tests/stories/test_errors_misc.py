"""Smaller faults: secrets echoed by a server stay out of logs and
errors, no log line per teacher request, no temporary folders left by a killed save, and a
YAML syntax error names the file and the line."""

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from chat_server import ChatServer  # noqa: E402
from storyrl.cli import main
from storyrl.stories.teacher import TeacherConfig, TeacherFailure, make_teacher

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-proj-5ecretKEY0123456789abcdef"


@pytest.fixture
def leaky(monkeypatch):
    monkeypatch.setenv("LEAKY_KEY", SECRET)
    servers = []

    def start(mode):
        servers.append(ChatServer(mode=mode))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _teacher(url):
    return TeacherConfig(
        backend="openai",
        model="t",
        max_failure_share=1.0,
        openai={"base_url": url, "retries": 1, "backoff_s": 0.01, "api_key_env": "LEAKY_KEY"},
    )


def test_a_server_that_echoes_the_key_does_not_put_it_in_the_logs(leaky, caplog):
    srv = leaky("leaky500")
    caplog.set_level(logging.DEBUG)
    t = make_teacher(_teacher(srv.url), seed=0)
    t.score(["Once upon a time,"], [" a fox."])
    assert srv.requests and "denied" in caplog.text  # the body is logged ...
    assert SECRET not in caplog.text and "[redacted]" in caplog.text  # ... without the key


def test_a_refusal_that_echoes_the_key_does_not_put_it_in_the_error(leaky):
    srv = leaky("leaky401")
    t = make_teacher(_teacher(srv.url), seed=0)
    with pytest.raises(TeacherFailure) as info:
        t.score(["Once upon a time,"], [" a fox."])
    assert "HTTP 401" in str(info.value) and SECRET not in str(info.value)


def _env():
    return dict(os.environ, PYTHONPATH=f"{ROOT}:{os.environ.get('PYTHONPATH', '')}")


def test_no_log_line_per_teacher_request(tmp_path):
    stories = tmp_path / "s.parquet"
    pd.DataFrame(
        {"prompt": ["Once upon a time,"] * 12, "continuation": [f" fox {i}." for i in range(12)]}
    ).to_parquet(stories)
    srv = ChatServer(reply_fn=lambda m: "1 2 3")
    try:
        section = {"teacher": {"backend": "openai", "model": "t", "openai": {"base_url": srv.url}}}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "storyrl.cli",
                "teacher",
                "score",
                "--stories",
                str(stories),
                "--output",
                str(tmp_path / "o.parquet"),
                "--section",
                json.dumps(section),
            ],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
    finally:
        srv.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(srv.requests) == 12
    assert "HTTP Request" not in proc.stderr, proc.stderr[-2000:]


SLOW_SAVE = """
import sys, time
from storyrl.core.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    open(tmp, "wb").write(b"half")
    print("saving", flush=True)
    time.sleep(60)
"""


def test_a_save_killed_midway_leaves_no_temporary_folder_after_the_next_save(tmp_path):
    from storyrl.core.atomic import write_text

    target = tmp_path / "state.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, str(target)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "saving"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the kill's leftover
    write_text(target, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]
    assert target.read_text() == "whole"


def test_a_save_in_progress_elsewhere_is_left_alone(tmp_path):
    from storyrl.core.atomic import write_text

    target = tmp_path / "state.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, str(target)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "saving"
        write_text(tmp_path / "state.pt", "whole")
        assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # still its own
    finally:
        proc.kill()
        proc.wait()


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpora:\n  demo: {format: demo\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "line 3" in err, err
