"""The offline proxy teacher: the 0 0 0 rule, a sensible ordering, determinism, the reply format,
the score cache (also shared by two processes) and the `storyrl teacher score` CLI."""

import json
import multiprocessing as mp
import subprocess
import sys
from itertools import product
from pathlib import Path

import pandas as pd
import pytest

from storyrl.core.schemas import read_metadata, read_table
from storyrl.stories.teacher import TeacherConfig, make_teacher
from storyrl.stories.teacher.cache import ScoreCache
from storyrl.stories.teacher.heuristic import judge
from teacher_examples import (  # noqa: E402
    EMPTY_OR_PARTIAL,
    LONG_VARIED,
    ONE_LINE_OR_BROKEN,
    PROMPT,
    REPETITIVE_LOOP,
    SHORT_COHERENT,
    WORD_SALAD,
)

ROOT = Path(__file__).resolve().parents[2]


def total(cont):
    return sum(judge(PROMPT, cont))


@pytest.mark.parametrize("cont", EMPTY_OR_PARTIAL)
def test_empty_or_under_one_sentence_gets_zero(cont):
    assert judge(PROMPT, cont) == (0, 0, 0)


@pytest.mark.parametrize(
    "lower, higher",
    [
        (WORD_SALAD, REPETITIVE_LOOP),
        (REPETITIVE_LOOP, SHORT_COHERENT),
        (ONE_LINE_OR_BROKEN, SHORT_COHERENT),
        (SHORT_COHERENT, LONG_VARIED),
    ],
    ids=["salad<loop", "loop<short", "oneline<short", "short<long"],
)
def test_ordering(lower, higher):
    # Every story of the lower class scores below every story of the higher class.
    for a, b in product(lower, higher):
        assert total(a) < total(b), (judge(PROMPT, a), a, judge(PROMPT, b), b)


def test_not_saturated_and_cut_off_costs_coherence():
    # A complete, well-formed but stock-phrase fairy tale does not get the top score...
    stock = SHORT_COHERENT[0] + " She lived happily ever after. The end."
    assert total(stock) < 9
    # ...and a story cut off mid-sentence (the 90-token limit) loses coherence.
    full = LONG_VARIED[1]
    cut = full.rsplit(".", 2)[0] + ". When the villagers saw the"
    assert judge(PROMPT, cut)[1] < judge(PROMPT, full)[1]


def test_teacher_replies_in_rubric_format_and_is_deterministic(tmp_path):
    t = make_teacher(TeacherConfig(), seed=0)
    conts = WORD_SALAD + LONG_VARIED
    a = t.score([PROMPT] * len(conts), conts)
    b = make_teacher(TeacherConfig(), seed=1).score([PROMPT] * len(conts), conts)
    assert a == b
    for j, c in zip(a, conts):
        assert j.parsed and not j.failed_call
        assert j.reply == " ".join(map(str, judge(PROMPT, c)))
        assert j.teacher_score == pytest.approx(sum(j.scores) / 9)
    assert t.identity["backend"] == "heuristic" and len(t.identity["template_sha256"]) == 64


def _score_in_process(cache_path, conts, start, out):
    t = make_teacher(TeacherConfig(), seed=0, cache_path=cache_path)
    start.wait()  # both jobs are up: from here on they write at the same time
    for i in range(0, len(conts), 5):  # many small transactions interleave with the other job
        t.score([PROMPT] * 5, conts[i : i + 5])
    out.put(dict(t.stats))


def test_cache_shared_by_two_processes(tmp_path):
    cache = tmp_path / "cache.sqlite"
    pool = SHORT_COHERENT + LONG_VARIED + REPETITIVE_LOOP
    conts = [f"{pool[i % len(pool)]} Tale {i}." for i in range(300)]
    ctx = mp.get_context("spawn")
    out, start = ctx.Queue(), ctx.Barrier(2)
    # Two jobs score overlapping parts at the same time.
    jobs = [
        ctx.Process(target=_score_in_process, args=(str(cache), conts[:200], start, out)),
        ctx.Process(target=_score_in_process, args=(str(cache), conts[100:], start, out)),
    ]
    for j in jobs:
        j.start()
    stats = [out.get(timeout=60) for _ in jobs]
    for j in jobs:
        j.join(timeout=60)
        assert j.exitcode == 0
    assert all(s["stories"] == 200 for s in stats)
    assert sum(s["cache_hits"] for s in stats) <= 100  # the overlap is scored at most twice
    db = ScoreCache(cache)
    assert len(db) == 300
    # A third job finds every reply in the cache, and they are the teacher's replies.
    t = make_teacher(TeacherConfig(), seed=0, cache_path=str(cache))
    got = t.score([PROMPT] * 300, conts)
    assert t.stats["cache_hits"] == 300
    assert [j.reply for j in got] == [" ".join(map(str, judge(PROMPT, c))) for c in conts]


def test_cli_scores_a_parquet(tmp_path):
    stories = tmp_path / "stories.parquet"
    conts = WORD_SALAD[:2] + SHORT_COHERENT[:2] + LONG_VARIED[:2] + [""]
    pd.DataFrame(
        {"prompt": [PROMPT] * len(conts), "continuation": conts, "extra": range(len(conts))}
    ).to_parquet(stories)
    out = tmp_path / "scores.parquet"
    section = {"reward": {"length_coef": 0.4}, "max_new_tokens": 90, "seed": 7}
    cmd = [
        sys.executable,
        "-m",
        "storyrl.cli",
        "teacher",
        "score",
        "--stories",
        str(stories),
        "--output",
        str(out),
        "--section",
        json.dumps(section),
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {
        "stories": 7,
        "failed_calls": 0,
        "unparsed": 0,
        "malformed": 0,
        "cache_hits": 0,
    }
    df = read_table(out, "teacher_scores").to_pandas()
    assert df["continuation"].tolist() == conts
    for _, row in df.iterrows():
        s = judge(PROMPT, row.continuation)
        assert (row.readability, row.coherence, row.creativity) == s
        assert row.teacher_reply == " ".join(map(str, s)) and row.parsed and not row.failed_call
        words = len(row.continuation.split())
        assert row.n_words == words
        assert row.reward == pytest.approx((sum(s) / 9 + 0.4 * words / 90) / 1.4)
    meta = read_metadata(out)
    assert meta["table"] == "teacher_scores" and meta["seed"] == 7
    assert meta["teacher"]["backend"] == "heuristic"
    assert meta["teacher"]["template_sha256"] == load_sha()
    assert meta["counts"]["failed_calls"] == 0

    # A file without the continuation column is named in the error.
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"prompt": ["x"], "story": ["y"]}).to_parquet(bad)
    cmd[cmd.index(str(stories))] = str(bad)
    res = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2
    assert f"storyrl: {bad}: column 'continuation' missing" in res.stderr


def load_sha():
    import hashlib

    return hashlib.sha256((ROOT / "config/prompts/teacher_rubric.txt").read_bytes()).hexdigest()
