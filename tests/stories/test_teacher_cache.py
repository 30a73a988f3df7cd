"""The score cache on a cluster: one file per job, errors never kill a run, only parsed replies
are kept, the key holds the server, one teacher's entries can be dropped."""

import logging
import multiprocessing as mp
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, paper_weights, pipeline_checkouts, snakemake
from storyrl.stories.teacher import TeacherConfig, TeacherFailure, make_teacher
from storyrl.stories.teacher.cache import ScoreCache
from teacher_examples import LONG_VARIED, PROMPT, SHORT_COHERENT  # noqa: E402

CONTS = [f"{(SHORT_COHERENT + LONG_VARIED)[i % 4]} Tale {i}." for i in range(40)]


def uncached_replies():
    return [j.reply for j in make_teacher(TeacherConfig(), seed=0).score([PROMPT] * 40, CONTS)]


# --------------------------------------------------------------------------- cache errors
def _corrupt(path: Path) -> Path:
    path.write_bytes(b"this is not a database, it was cut off by a full disk" * 100)
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _parent_is_a_file(path: Path) -> Path:
    path.with_name("sub").write_text("a file where the cache's folder should be")
    return path.with_name("sub") / path.name


@pytest.mark.parametrize("spoil", [_corrupt, _directory, _parent_is_a_file])
def test_unusable_cache_file_is_logged_and_scoring_goes_on_uncached(tmp_path, caplog, spoil):
    path = tmp_path / "run" / "teacher_cache.sqlite"
    path.parent.mkdir()
    path = spoil(path)
    with caplog.at_level(logging.WARNING, logger="storyrl.stories.teacher"):
        t = make_teacher(TeacherConfig(), seed=0, cache_path=str(path))
        got = t.score([PROMPT] * 40, CONTS)
        t.close()
    assert [j.reply for j in got] == uncached_replies()
    assert t.stats["cache_hits"] == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in m and "uncached" in m for m in warned), warned


def _hold_lock(path, locked, release):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS x (a)")
    db.execute("BEGIN EXCLUSIVE")  # a stuck job on another node, or a stale NFS lock
    locked.set()
    release.wait(60)
    db.execute("COMMIT")
    db.close()


def test_two_processes_on_one_results_tree_lose_nothing_and_fail_nothing(tmp_path, caplog):
    # Job A holds the cache file locked while job B scores into the same results tree: B waits
    # a short time, says so with the path, and scores everything uncached.
    path = tmp_path / "results" / "rl" / "r1" / "teacher_cache.sqlite"
    path.parent.mkdir(parents=True)
    ctx = mp.get_context("spawn")
    locked, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(path), locked, release))
    holder.start()
    try:
        assert locked.wait(60)
        with caplog.at_level(logging.WARNING, logger="storyrl.stories.teacher"):
            t = make_teacher(TeacherConfig(), seed=0, cache_path=str(path), cache_timeout_s=0.2)
            got = t.score([PROMPT] * 40, CONTS)
            t.close()
    finally:
        release.set()
        holder.join(60)
    assert holder.exitcode == 0
    assert [j.reply for j in got] == uncached_replies()
    assert any(str(path) in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # The lock is gone: the next job caches as usual, and a rerun is served from the cache.
    t = make_teacher(TeacherConfig(), seed=0, cache_path=str(path))
    t.score([PROMPT] * 40, CONTS)
    t.close()
    t = make_teacher(TeacherConfig(), seed=0, cache_path=str(path))
    assert [j.reply for j in t.score([PROMPT] * 40, CONTS)] == uncached_replies()
    assert t.stats["cache_hits"] == 40


def test_paper_plan_gives_every_job_its_own_cache(tmp_path):
    official = tmp_path / "official.yaml"
    official.write_text(yaml.safe_dump({"official": {**pipeline_checkouts(tmp_path), "aoa": True}}))
    out = snakemake(
        tmp_path,
        "-n",
        "-p",
        "--configfile",
        str(ROOT / "config" / "paper.yaml"),
        str(paper_weights(tmp_path)),
        str(official),
    ).stdout
    teacher_jobs = [
        line
        for line in out.splitlines()
        if re.search(r"storyrl\S* (rl train|eval stories|teacher score) ", line)
    ]
    # the RL runs and the story evaluations of 108 models in 9 group jobs (a pretraining run's
    # milestones, each RL run's checkpoints and final policy)
    assert len(teacher_jobs) == 8 + 9
    caches = [
        m.group(1).strip("'\"")
        for line in teacher_jobs
        for m in [re.search(r"--teacher-cache (\S+)", line)]
        if m
    ]
    assert caches, "no job keeps a cache: the RL runs' resumes would pay for every reply again"
    assert len(caches) == len(set(caches)), "two jobs write one SQLite file"
    for line in teacher_jobs:  # an RL run's cache lives in its own run folder
        m = re.search(r"--teacher-cache (\S+)", line)
        if " rl train " in line:
            run = re.search(r"--output (\S+)", line).group(1)
            assert m and m.group(1).strip("'\"").startswith(run.strip("'\"") + "/"), line


# --------------------------------------------------------------------------- what is cached


def openai_cfg(url, **kw):
    return TeacherConfig(
        backend="openai",
        model="teacher-x",
        openai={"base_url": url, "timeout_s": 2, "retries": 0, "backoff_s": 0.01, "concurrency": 4},
        **kw,
    )


def test_unparseable_replies_are_not_cached_so_a_fixed_server_is_asked_again(server, tmp_path):
    srv = server(mode="garbage_text")
    cache = str(tmp_path / "c.sqlite")
    with pytest.raises(TeacherFailure, match="unparseable"):
        make_teacher(openai_cfg(srv.url), seed=0, cache_path=cache).score([PROMPT] * 5, CONTS[:5])
    assert len(srv.requests) == 5
    srv.mode = "ok"  # the server is fixed: the rerun asks it again and succeeds
    t = make_teacher(openai_cfg(srv.url), seed=0, cache_path=cache)
    js = t.score([PROMPT] * 5, CONTS[:5])
    assert len(srv.requests) == 10 and t.stats["cache_hits"] == 0
    assert all(j.parsed and j.reply == "2 3 1" for j in js)


def test_another_server_is_another_teacher(server, tmp_path):
    a, b = server(reply_fn=lambda m: "1 1 1"), server(reply_fn=lambda m: "3 3 3")
    cache = str(tmp_path / "c.sqlite")
    make_teacher(openai_cfg(a.url), seed=0, cache_path=cache).score([PROMPT] * 3, CONTS[:3])
    t = make_teacher(openai_cfg(b.url), seed=0, cache_path=cache)
    js = t.score([PROMPT] * 3, CONTS[:3])
    assert len(b.requests) == 3 and [j.reply for j in js] == ["3 3 3"] * 3
    assert t.identity["server"] == b.url


def test_drop_one_teachers_entries(server, tmp_path):
    from storyrl.stories.teacher.cache import drop_entries

    a, b = server(reply_fn=lambda m: "1 1 1"), server(reply_fn=lambda m: "3 3 3")
    cache = tmp_path / "c.sqlite"
    for s in (a, b):
        make_teacher(openai_cfg(s.url), seed=0, cache_path=str(cache)).score(
            [PROMPT] * 3, CONTS[:3]
        )
    assert len(ScoreCache(cache)) == 6
    assert drop_entries(cache, server=a.url) == 3
    assert len(ScoreCache(cache)) == 3
    t = make_teacher(openai_cfg(b.url), seed=0, cache_path=str(cache))
    t.score([PROMPT] * 3, CONTS[:3])
    assert t.stats["cache_hits"] == 3  # the other teacher's entries stay
    with pytest.raises(ValueError, match="unknown teacher field"):
        drop_entries(cache, colour="red")


def test_server_credentials_stay_out_of_the_key_and_metadata(server, tmp_path):
    srv = server(reply_fn=lambda m: "2 2 2")
    url = srv.url.replace("http://", "http://user:s3cret@")
    t = make_teacher(openai_cfg(url), seed=0, cache_path=str(tmp_path / "c.sqlite"))
    t.score([PROMPT], CONTS[:1])
    assert t.identity["server"] == srv.url and "s3cret" not in str(t.identity)
    t.close()
    assert b"s3cret" not in (tmp_path / "c.sqlite").read_bytes()
