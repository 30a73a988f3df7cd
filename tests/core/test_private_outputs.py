"""Secrets and private paths stay out of what storyrl prints and writes: a password in the
teacher's URL (`http://user:pw@host`) reaches no error message, log line, printed config or
share card; paths are written relative to the workflow's folder (the working directory) where
they lie inside it, else as the file's name beside its sha256."""

import base64
import json
import logging
import shutil

import pandas as pd
import pytest
import yaml

from analysis_synth import write_results  # noqa: E402
from helpers import ROOT, TEST_CONFIG, snakemake
from storyrl.cli import main
from storyrl.config import ConfigError
from storyrl.core.redact import credentials_to_env, portable_path, redact
from storyrl.core.schemas import make_metadata
from storyrl.stories.teacher import TeacherConfig, TeacherFailure, make_teacher

SECRET = "s3cret-pw"
TEMPLATE = ROOT / "config" / "prompts" / "teacher_rubric.txt"


def with_password(url: str) -> str:
    return url.replace("http://", f"http://alice:{SECRET}@")


def test_redact_blanks_the_credentials_of_any_url():
    assert redact(f"GET http://alice:{SECRET}@h:8000/v1 failed") == (
        "GET http://[redacted]@h:8000/v1 failed"
    )
    assert redact("https://tok@example.org/x and http://127.0.0.1:8000/v1") == (
        "https://[redacted]@example.org/x and http://127.0.0.1:8000/v1"
    )


def test_a_password_in_the_teachers_url_is_never_printed(server, tmp_path, capsys, caplog):
    srv = server(mode="401")
    teacher = make_teacher(
        TeacherConfig(backend="openai", model="t", openai={"base_url": with_password(srv.url)}),
        seed=0,
    )
    with pytest.raises(TeacherFailure) as info:
        teacher.score(["Once upon a time"], [" a fox."])
    assert "HTTP 401" in str(info.value) and SECRET not in str(info.value)

    stories = tmp_path / "stories.parquet"
    pd.DataFrame({"prompt": ["Once upon a time"], "continuation": [" a fox."]}).to_parquet(stories)
    teacher = {"backend": "openai", "model": "t", "openai": {"base_url": with_password(srv.url)}}
    args = ["teacher", "score", "--stories", str(stories), "--output", str(tmp_path / "o.parquet")]
    with caplog.at_level(logging.INFO):
        assert main([*args, "--section", json.dumps({"teacher": teacher})]) == 2
        with pytest.raises(SystemExit):  # argparse echoes what it cannot take
            main([*args, "--cache", "c.sqlite", with_password(srv.url)])
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "[redacted]@127.0.0.1" in err, err
    assert SECRET not in err and SECRET not in caplog.text

    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["teacher"] = {
        "backend": "openai",
        "model": "t",
        "template": str(TEMPLATE),
        "openai": {"base_url": with_password(srv.url)},
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[redacted]@127.0.0.1" in out and SECRET not in out


def test_the_share_card_holds_no_password_and_no_absolute_path(tmp_path, monkeypatch):
    work = tmp_path / "workflow"
    write_results(work / "results", n_steps=2, batch=4, n_stories=4, runs=[(20_000_000, 42)])
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["teacher"] = {
        "backend": "openai",
        "model": "t",
        "template": str(TEMPLATE),  # outside the workflow's folder
        "openai": {"base_url": with_password("http://127.0.0.1:9/v1")},
    }
    (work / "c.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(work)
    assert main(["share", "--results", "results", "--out", "share", "--config", "c.yaml"]) == 0
    card = (work / "share" / "README.md").read_text()
    record = (work / "share" / "config.yaml").read_text()  # the run's config, shared beside it
    assert "teacher_rubric.txt" in record and "[redacted]@127.0.0.1" in record
    for text in (card, record):
        assert SECRET not in text and str(ROOT) not in text and str(tmp_path) not in text


def test_paths_in_metadata_are_relative_inside_the_workflow_folder_else_a_name(
    tmp_path, monkeypatch
):
    work = tmp_path / "workflow"
    (work / "rubrics").mkdir(parents=True)
    inside = shutil.copy(TEMPLATE, work / "rubrics" / "mine.txt")
    monkeypatch.chdir(work)
    assert portable_path(inside) == "rubrics/mine.txt"
    assert portable_path("rubrics/mine.txt") == "rubrics/mine.txt"
    assert portable_path(TEMPLATE) == "teacher_rubric.txt"
    assert portable_path(work / ".." / "elsewhere" / "ckpt-20M") == "ckpt-20M"

    for template, written in ((inside, "rubrics/mine.txt"), (TEMPLATE, "teacher_rubric.txt")):
        identity = make_teacher(TeacherConfig(template=str(template)), seed=0).identity
        assert identity["template"] == written and len(identity["template_sha256"]) == 64

    meta = make_metadata(
        "rollouts",
        checkpoint=str(tmp_path / "scratch" / "ckpt-20M"),
        model_dir=str(work / "results" / "ckpt-20M"),
        teacher={"template": str(TEMPLATE), "server": with_password("http://h:1/v1")},
    )
    assert meta["checkpoint"] == "ckpt-20M" and meta["model_dir"] == "results/ckpt-20M"
    assert meta["teacher"] == {
        "template": "teacher_rubric.txt",
        "server": "http://[redacted]@h:1/v1",
    }


def test_the_workflow_prints_no_password_of_the_teachers_url(tmp_path):
    # snakemake prints a job's command line (-p, and every failed job's), which storyrl cannot
    # redact: the password travels to the job in an environment variable instead.
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["teacher"] = {
        "backend": "openai",
        "model": "t",
        "openai": {"base_url": with_password("http://127.0.0.1:9/v1")},
    }
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(config))
    printed = out.stdout + out.stderr
    assert "--teacher" in printed and "${STORYRL_URL_CREDENTIALS_" in printed, printed[-3000:]
    assert SECRET not in printed


def test_a_job_fills_the_urls_credentials_from_the_environment(server, monkeypatch):
    srv = server()
    url, env = credentials_to_env(with_password(srv.url))
    assert SECRET not in url and list(env.values()) == [f"alice:{SECRET}"]
    cfg = TeacherConfig(backend="openai", model="t", openai={"base_url": url})
    with pytest.raises(ConfigError, match="STORYRL_URL_CREDENTIALS_"):
        make_teacher(cfg, seed=0)  # the variable is not set: named, not a silent anonymous call
    monkeypatch.setenv(*next(iter(env.items())))
    make_teacher(cfg, seed=0).score(["Once upon a time"], [" a fox."])
    sent = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert srv.requests[-1]["headers"]["authorization"] == f"Basic {sent}"
