"""What `config/paper.yaml` does differently from our defaults, as the authors' code
(malihamza/babylm-interactive-learning at 4bfd376) did it: their reply parse, the notebook reading
replies as their CSV held them, their failure handling, the prompt set's cap, fp32 zero-shot, the
fast task list without COMPS and the mirrored smoothing of the score-against-length panel. Each
test runs the real component; docs/paper.md's fidelity table lists the settings."""

import sys
from pathlib import Path

import pytest

from storyrl.analysis.load import regex_sums
from storyrl.teacher import TeacherConfig, make_teacher

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once upon a time,"

# reply -> the teacher score the authors' parse gives it (their teacher.py: `\b\d+\b`, clamped
# to 0..3, the first three over 9, no number 0.5)
AUTHORS = {"R2 N2 C3": 0.5, "2nd 3 1": 4 / 9, "5 -1 2": 6 / 9, "Score_2 1 1": 2 / 9}


def echo_teacher(server, **kw):
    """A teacher whose server replies with the story's text after `STORY:`."""
    srv = server(reply_fn=lambda msg: msg.split("STORY:")[1].split("\n")[0].strip())
    cfg = TeacherConfig(
        backend="openai",
        model="teacher-x",
        openai={"base_url": srv.url, "retries": 0, "timeout_s": 5},
        **kw,
    )
    return make_teacher(cfg, seed=0)


def test_paper_parse_reads_replies_as_the_authors_regex(server):
    t = echo_teacher(server, parse="paper", on_failure="default")
    try:
        js = t.score([PROMPT] * len(AUTHORS), [f"STORY: {r}\n" for r in AUTHORS])
    finally:
        t.close()
    got = {r: j.teacher_score for r, j in zip(AUTHORS, js)}
    assert got == pytest.approx(AUTHORS)
    assert [j.parsed for j in js] == [False, True, True, True]


def test_notebook_statistic_reads_replies_as_the_csv_held_them():
    # Their log writer turned \r and \n into spaces; their teacher stripped the reply.
    assert regex_sums(["2\n1\n1", "2\r\n1\r\n1", "\n 3 3 3 \n", "2\t1\t1", None]) == [
        4,
        4,
        9,
        None,
        None,
    ]
