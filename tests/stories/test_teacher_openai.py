"""The `openai` backend against a real chat-completions server on 127.0.0.1 (tests/chat_server.py):
request format, the API key's path, retries, failure counting, the threshold error, the cache."""

import json
import logging
import time

import pytest

from storyrl.config import ConfigError
from storyrl.stories.rubric import load_rubric
from storyrl.stories.teacher import TeacherConfig, TeacherFailure, make_teacher

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
CONTS = [f" there lived a fox number {i}. He was happy." for i in range(10)]


def cfg(url, **kw):
    o = {"base_url": url, "timeout_s": 0.5, "retries": 2, "backoff_s": 0.01, "concurrency": 4}
    o.update(kw.pop("openai", {}))
    return TeacherConfig(backend="openai", model="teacher-x", openai=o, **kw)


def test_request_matches_paper_and_replies_parse(server):
    # The reply depends on the message, so a mix-up between stories would show.
    srv = server(reply_fn=lambda msg: "3 2 1" if "number 3." in msg else "1 1 1")
    t = make_teacher(cfg(srv.url), seed=42)
    js = t.score([PROMPT] * len(CONTS), CONTS)
    assert [j.scores for j in js] == [(3, 2, 1) if i == 3 else (1, 1, 1) for i in range(10)]
    assert len(srv.requests) == 10
    req = srv.requests[0]
    assert req["path"] == "/v1/chat/completions"
    body = req["body"]
    assert body["model"] == "teacher-x"
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 6, 42)
    rubric = load_rubric(TeacherConfig().template)
    sent = sorted(r["body"]["messages"][0]["content"] for r in srv.requests)
    assert sent == sorted(rubric.render(PROMPT, c) for c in CONTS)
    assert all(
        r["body"]["messages"][0]["role"] == "user" and len(r["body"]["messages"]) == 1
        for r in srv.requests
    )
    assert t.identity["sampling"] == {"temperature": 0.2, "top_p": 1.0, "max_tokens": 6, "seed": 42}


def test_api_key_from_named_env_var_never_stored(server, monkeypatch, caplog):
    secret = "sk-test-5ecret-never-logged"
    monkeypatch.setenv("MY_TEACHER_KEY", secret)
    srv = server(mode="error500")
    caplog.set_level(logging.DEBUG)
    c = cfg(srv.url, max_failure_share=1.0, openai={"api_key_env": "MY_TEACHER_KEY", "retries": 1})
    t = make_teacher(c, seed=0)
    t.score([PROMPT], CONTS[:1])
    assert srv.requests[0]["headers"]["authorization"] == f"Bearer {secret}"
    assert secret not in json.dumps(t.identity) + c.model_dump_json() + caplog.text
    monkeypatch.delenv("MY_TEACHER_KEY")
    with pytest.raises(ConfigError, match="environment variable MY_TEACHER_KEY is not set"):
        make_teacher(c, seed=0)


def test_transient_500s_are_retried(server):
    srv = server(fail_first=2)  # each story fails twice, then succeeds
    t = make_teacher(cfg(srv.url, openai={"retries": 2}), seed=0)
    js = t.score([PROMPT] * 5, CONTS[:5])
    assert all(j.parsed and j.scores == (2, 3, 1) for j in js)
    assert len(srv.requests) == 15 and t.stats["retries"] == 10 and t.stats["failed_calls"] == 0


@pytest.mark.parametrize("mode", ["error500", "stall", "garbage_body"])
def test_server_down_counts_failures_then_raises(server, mode):
    srv = server(mode=mode, stall_s=1.5)
    t = make_teacher(
        cfg(srv.url, max_failure_share=1.0, openai={"retries": 1, "timeout_s": 0.3}), seed=0
    )
    t0 = time.perf_counter()
    js = t.score([PROMPT] * 4, CONTS[:4])
    assert time.perf_counter() - t0 < 3  # timeouts hold: no waiting for the stalled server
    assert all(
        j.failed_call and not j.parsed and j.reply == "" and j.teacher_score == 0.5 for j in js
    )
    assert len(srv.requests) == 8  # 1 try + 1 retry each
    assert t.stats["failed_calls"] == 4 and t.stats["retries"] == 4
    # With the default threshold (10%) the caller gets an error, not default rewards.
    t = make_teacher(cfg(srv.url, openai={"retries": 0, "timeout_s": 0.3}), seed=0)
    with pytest.raises(TeacherFailure, match=r"4 of 4 replies failed \(4 failed calls") as err:
        t.score([PROMPT] * 4, CONTS[:4])
    assert len(err.value.judgements) == 4


def test_unparseable_replies_count_against_threshold(server):
    bad = {1, 7}
    srv = server(
        reply_fn=lambda m: "I cannot" if any(f"number {i}." in m for i in bad) else "2 2 2"
    )
    t = make_teacher(cfg(srv.url, max_failure_share=0.2), seed=0)
    js = t.score([PROMPT] * 10, CONTS)  # 2 of 10 = 20%: allowed
    assert [not j.parsed for j in js] == [i in bad for i in range(10)]
    assert [j.teacher_score for j in js] == [0.5 if i in bad else 6 / 9 for i in range(10)]
    assert t.stats["unparsed"] == 2 and t.stats["failed_calls"] == 0
    t = make_teacher(cfg(srv.url, max_failure_share=0.1), seed=0)
    with pytest.raises(
        TeacherFailure,
        match=r"2 of 10 replies failed \(0 failed calls, 2 "
        r"unparseable, e.g. 'I cannot'.*max_failure_share=0.1",
    ):
        t.score([PROMPT] * 10, CONTS)


def test_refused_request_fails_fast(server):
    srv = server(mode="401")
    t = make_teacher(cfg(srv.url), seed=0)
    with pytest.raises(TeacherFailure, match="refused the request for model 'teacher-x': HTTP 401"):
        t.score([PROMPT], CONTS[:1])
    assert len(srv.requests) == 1


def test_a_story_past_the_servers_context_is_one_failed_reply(server):
    # vLLM's server refuses a prompt that leaves no room for max_tokens with HTTP 400: that
    # story fails alone (default score), asked once; the step goes on.
    long = CONTS[0] + " and then" * 200
    srv = server(max_chars=len(load_rubric(TeacherConfig().template).render(PROMPT, long)) - 1)
    t = make_teacher(cfg(srv.url, max_failure_share=0.5), seed=0)
    js = t.score([PROMPT] * 4, [long, *CONTS[1:4]])
    assert [j.failed_call for j in js] == [True, False, False, False]
    assert js[0].teacher_score == 0.5 and js[1].teacher_score == 6 / 9
    assert len(srv.requests) == 4  # no retries: the same prompt would be refused again


def test_cache_makes_rescoring_free(server, tmp_path):
    srv = server(reply_fn=lambda m: "3 3 2")
    c = cfg(srv.url)
    t = make_teacher(c, seed=1, cache_path=str(tmp_path / "cache.sqlite"))
    first = t.score([PROMPT] * 10, CONTS)
    t.close()
    assert len(srv.requests) == 10
    t = make_teacher(c, seed=1, cache_path=str(tmp_path / "cache.sqlite"))
    assert t.score([PROMPT] * 10, CONTS) == first
    assert len(srv.requests) == 10 and t.stats["cache_hits"] == 10
    # Another seed is another sampling setting: scored anew.
    make_teacher(c, seed=2, cache_path=str(tmp_path / "cache.sqlite")).score([PROMPT], CONTS[:1])
    assert len(srv.requests) == 11


def test_failed_calls_are_not_cached(server, tmp_path):
    srv = server(mode="error500")
    c = cfg(srv.url, max_failure_share=1.0, openai={"retries": 0})
    make_teacher(c, seed=0, cache_path=str(tmp_path / "c.sqlite")).score([PROMPT], CONTS[:1])
    srv.mode = "ok"  # the server is back: the story is asked again, not served from the cache
    js = make_teacher(c, seed=0, cache_path=str(tmp_path / "c.sqlite")).score([PROMPT], CONTS[:1])
    assert js[0].parsed and len(srv.requests) == 2


def test_score_file_stops_on_failure_and_keeps_what_was_scored(server, tmp_path):
    import pandas as pd

    from storyrl.core.schemas import read_metadata, read_table
    from storyrl.stories.score_file import ScoreSection, score_file

    stories = tmp_path / "stories.parquet"
    pd.DataFrame({"prompt": [PROMPT] * 10, "continuation": CONTS}).to_parquet(stories)
    out, cache = tmp_path / "out.parquet", str(tmp_path / "cache.sqlite")
    srv = server(reply_fn=lambda m: "1 2 3")
    section = ScoreSection(teacher=cfg(srv.url, openai={"retries": 0}), batch_size=5)
    n = {"count": 0}

    def go_down_after_first_batch(msg):
        n["count"] += 1
        if n["count"] == 5:  # the last reply of the first batch; later requests fail
            srv.mode = "error500"
        return "1 2 3"

    srv.reply_fn = go_down_after_first_batch
    with pytest.raises(TeacherFailure, match="5 of 5 replies failed"):
        score_file(stories, out, section, cache)
    assert not out.exists()  # no half-scored table
    srv.mode, srv.reply_fn = "ok", lambda m: "1 2 3"
    before = len(srv.requests)
    counts = score_file(stories, out, section, cache)
    assert len(srv.requests) - before == 5  # the first batch came from the cache
    assert counts == {
        "stories": 10,
        "failed_calls": 0,
        "unparsed": 0,
        "malformed": 0,
        "cache_hits": 5,
    }
    df = read_table(out, "teacher_scores").to_pandas()
    assert df["teacher_reply"].tolist() == ["1 2 3"] * 10
    meta = read_metadata(out)
    assert meta["teacher"] == {
        "backend": "openai",
        "server": srv.url,
        "model": "teacher-x",
        "template": "config/prompts/teacher_rubric.txt",
        "template_sha256": load_rubric(TeacherConfig().template).sha256,
        "join": "seam",
        "sampling": {"temperature": 0.2, "top_p": 1.0, "max_tokens": 6, "seed": 42},
    }
    assert meta["counts"]["failed_calls"] == 0
