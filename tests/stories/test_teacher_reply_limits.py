"""Teacher replies a server should never send: one far longer than the `max_tokens` asked for,
and one whose `content` is not text. Each counts as one failed call for its story (real HTTP on
127.0.0.1, tests/chat_server.py), and an RL run that ends before the steps its budget plans for
says so in a warning and in its summary.json."""

import json
import logging
import threading

import pytest

from storyrl.stories.teacher import TeacherConfig, make_teacher

PROMPT = "Once upon a time"
CONTS = [f" there lived a fox number {i}." for i in range(8)]
LONG = "3 2 1 " + "word " * 100_000


def cfg(url, **kw):
    o = {"base_url": url, "timeout_s": 5, "retries": 2, "backoff_s": 0.01, "concurrency": 4}
    return TeacherConfig(backend="openai", model="m", openai=o, **kw)


def test_an_over_long_reply_is_one_failed_call_and_is_not_kept(server, caplog):
    srv = server(reply_fn=lambda msg: LONG if "number 3." in msg else "3 2 1")
    t = make_teacher(cfg(srv.url, max_failure_share=0.5), seed=0)
    js = t.score([PROMPT] * len(CONTS), CONTS)
    assert [j.failed_call for j in js] == [i == 3 for i in range(8)]
    assert js[3].reply == "" and js[3].teacher_score == 0.5
    assert all(j.scores == (3, 2, 1) for i, j in enumerate(js) if i != 3)
    assert t.stats["failed_calls"] == 1
    assert "longer than teacher.max_tokens=6 allows" in caplog.text
    # Not asked again: a server that ignores max_tokens answers long again.
    assert sum("number 3." in r["body"]["messages"][0]["content"] for r in srv.requests) == 1


def test_a_reply_with_more_words_than_max_tokens_allows_is_a_failed_call(server):
    # Few bytes, many words: the word cap applies on its own.
    srv = server(reply_fn=lambda msg: "3 2 1" + " a" * 200 if "number 5." in msg else "1 1 1")
    t = make_teacher(cfg(srv.url, max_failure_share=0.5), seed=0)
    js = t.score([PROMPT] * len(CONTS), CONTS)
    assert [j.failed_call for j in js] == [i == 5 for i in range(8)]


@pytest.mark.parametrize("content", [321, ["3 2 1"], {"text": "3 2 1"}])
def test_a_reply_whose_content_is_not_text_is_one_failed_call(server, content):
    srv = server(reply_fn=lambda msg: content if "number 1." in msg else "2 2 2")
    t = make_teacher(cfg(srv.url, max_failure_share=0.5), seed=0)
    js = t.score([PROMPT] * len(CONTS), CONTS)
    assert [j.failed_call for j in js] == [i == 1 for i in range(8)]
    assert all(j.scores == (2, 2, 2) for i, j in enumerate(js) if i != 1)


def test_an_rl_run_shortened_by_long_replies_warns_and_says_why_in_its_summary(
    tmp_path, server, caplog
):
    """The budget plans 6 steps at three words per reply. One reply of 100,000 extra words is a
    failed call (it costs no budget words); one of 13 extra words, within the cap, is charged
    and ends the run one step early: a warning and summary.json say so."""
    from rl_toys import make_checkpoint
    from storyrl.config import RLConfig
    from storyrl.rl.train import train
    from storyrl.stories.scoring import teacher_scorer

    lock, seen = threading.Lock(), []

    def reply(msg):
        with lock:
            seen.append(msg)
            n = len(seen)
        return {6: LONG, 10: "3 2 1 " + "very " * 12 + "good"}.get(n, "3 2 1")

    srv = server(reply_fn=reply)
    prompts, batch = 4 * 4, 4  # "Once upon a time" x 4 stories, charged with the first step
    rl = RLConfig.model_validate(
        {
            "prompts": [PROMPT],
            "batch_size": batch,
            "budget": prompts + 6 * batch * 3,
            "checkpoint_every": 1000,
            "threads": 1,
            "sampling": {"max_new_tokens": 4},
        }
    )
    teacher = cfg(srv.url, on_failure="default").model_dump()
    caplog.set_level(logging.INFO)
    with teacher_scorer(teacher, {}, 4, 42) as scorer:
        summary = train(make_checkpoint(tmp_path / "ckpt"), tmp_path / "run", rl, scorer)
    assert summary["steps"] == 5, summary
    assert (tmp_path / "run" / "final" / "config.json").exists()
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["stopped"] == {
        "reason": "budget",
        "after_step": 5,
        "planned_steps": 6,
        "detail": written["stopped"]["detail"],
    }
    assert "the next step's teacher replies take 12 words" in written["stopped"]["detail"]
    early = [r for r in caplog.records if "ended after step 5 of the 6" in r.getMessage()]
    assert early and early[0].levelno == logging.WARNING, caplog.text
    import pandas as pd

    steps = pd.read_parquet(tmp_path / "run" / "steps.parquet")
    assert steps.teacher_failed_calls.tolist() == [0, 1, 0, 0, 0]
    rollouts = pd.read_parquet(tmp_path / "run" / "rollouts.parquet")
    assert ((rollouts.teacher_reply == "") & ~rollouts.parsed).sum() == 1
    assert rollouts.teacher_reply.str.len().max() < 100
