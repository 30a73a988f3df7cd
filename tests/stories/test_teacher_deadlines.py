"""Teacher calls are bounded, against a real chat-completions server on
127.0.0.1 (tests/chat_server.py) that trickles its reply, rate-limits with `Retry-After`, or
stalls. A request has a total deadline, `Retry-After` is honoured up to a cap, and a batch has a
deadline after which it stops with a clear error (or, with `on_failure: default`, the paper's
setting, its missing replies count as failed calls)."""

import logging
import time

import pytest

from storyrl.stories.teacher import TeacherConfig, TeacherFailure, make_teacher

PROMPT = "Once upon a time,"


def teacher(url, openai=None, **kw):
    o = {"base_url": url, "timeout_s": 0.5, "retries": 0, "backoff_s": 0.01, "concurrency": 4}
    o.update(openai or {})
    return make_teacher(TeacherConfig(backend="openai", model="t", openai=o, **kw), seed=0)


def conts(n):
    return [f" a fox called {i}." for i in range(n)]


def test_a_trickling_server_meets_the_request_deadline(server):
    # ~230 bytes at 0.1 s each: 23 s for one reply, while no single read waits 0.5 s.
    srv = server(mode="trickle", trickle_s=0.1)
    t = teacher(srv.url, openai={"request_deadline_s": 1.5}, max_failure_share=1.0)
    t0 = time.monotonic()
    js = t.score([PROMPT], conts(1))
    took = time.monotonic() - t0
    t.close()
    assert took < 4, f"one request took {took:.1f} s against a deadline of 1.5 s"
    assert js[0].failed_call


def test_retry_after_is_honoured(server):
    srv = server(mode="429", retry_after=1)
    t = teacher(srv.url, openai={"retries": 1, "max_retry_after_s": 5}, max_failure_share=1.0)
    t.score([PROMPT], conts(1))
    t.close()
    times = [r["t"] for r in srv.requests]
    assert len(times) == 2 and times[1] - times[0] >= 0.95, times


def test_retry_after_past_the_cap_gives_up_at_once(server, caplog):
    srv = server(mode="429", retry_after=3600)
    t = teacher(srv.url, openai={"retries": 3, "max_retry_after_s": 2}, max_failure_share=1.0)
    caplog.set_level(logging.WARNING)
    t0 = time.monotonic()
    js = t.score([PROMPT], conts(1))
    t.close()
    assert time.monotonic() - t0 < 2 and js[0].failed_call
    assert len(srv.requests) == 1, "retried against the server's Retry-After: 3600"
    assert "3600" in caplog.text and "max_retry_after_s" in caplog.text, caplog.text


def test_a_stalled_server_stops_the_batch_at_its_deadline(server):
    srv = server(mode="stall", stall_s=30)
    t = teacher(
        srv.url,
        openai={"timeout_s": 1, "retries": 3, "concurrency": 2, "batch_deadline_s": 2},
    )
    t0 = time.monotonic()
    with pytest.raises(TeacherFailure, match=r"16 of 16 .*batch_deadline_s=2"):
        t.score([PROMPT] * 16, conts(16))
    t.close()
    assert time.monotonic() - t0 < 4


def test_paper_setting_counts_replies_missing_at_the_deadline_as_failed(server):
    srv = server(mode="stall", stall_s=30)
    t = teacher(
        srv.url,
        openai={"timeout_s": 1, "retries": 3, "concurrency": 2, "batch_deadline_s": 2},
        on_failure="default",
    )
    t0 = time.monotonic()
    js = t.score([PROMPT] * 16, conts(16))
    t.close()
    assert time.monotonic() - t0 < 4
    assert all(j.failed_call and j.teacher_score == 0.5 for j in js)
    assert t.stats["failed_calls"] == 16
