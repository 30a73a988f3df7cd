"""Replies that are not in the asked-for form (three integers 0-3) through the `openai` backend
against a real chat-completions server: unparsed by default; the paper setting keeps the authors'
parse but records the form per row and counts it per step."""

import numpy as np

from storyrl.stories.reward import compute_rewards
from storyrl.stories.rows import ScoredBatch, rollout_rows, step_row
from storyrl.stories.teacher import RewardConfig, TeacherConfig, make_teacher

PROMPT = "Once upon a time,"
# reply -> what the authors' parse (all integers, clamp to 0..3, first three) reads
MALFORMED = {
    "3.5 2 1": (3, 3, 2),
    "3/3 2/3 1/3": (3, 3, 2),
    "Score: 9/9": (3, 3, 0),
    "1. 3 2. 2 3. 1": (1, 3, 2),
}
GOOD = ["2 3 1", "0 0 0", "Readability: 2, Narrative: 3, Creativity: 1", "3, 3, 2."]


def score_all(server, replies, **kw):
    srv = server(reply_fn=lambda msg: msg.split("STORY:")[1].split("\n")[0].strip())
    c = TeacherConfig(
        backend="openai",
        model="teacher-x",
        max_failure_share=1.0,
        openai={"base_url": srv.url, "retries": 0, "timeout_s": 5},
        **kw,
    )
    t = make_teacher(c, seed=0)
    try:
        # The server echoes the story back as its reply.
        return t, t.score([PROMPT] * len(replies), [f"STORY: {r}\n" for r in replies])
    finally:
        t.close()


def test_malformed_replies_are_unparsed_by_default(server):
    replies = list(MALFORMED) + GOOD
    t, js = score_all(server, replies)
    assert [j.parsed for j in js[: len(MALFORMED)]] == [False] * len(MALFORMED), [
        (j.reply, j.scores) for j in js
    ]
    got = {r: (j.parsed, j.scores, j.well_formed) for r, j in zip(replies, js)}
    for r in MALFORMED:
        assert got[r] == (False, None, False), r
    for r in GOOD:
        assert got[r][0] and got[r][2], r
    assert all(j.teacher_score == 0.5 for j in js[: len(MALFORMED)])
    assert t.stats["unparsed"] == len(MALFORMED) and t.stats["malformed"] == len(MALFORMED)


def test_paper_parse_keeps_authors_reading_and_records_form(server):
    replies = list(MALFORMED) + GOOD
    t, js = score_all(server, replies, parse="paper", on_failure="default")
    for r, j in zip(replies, js):
        assert j.parsed, r
        assert j.well_formed == (r in GOOD), r
        if r in MALFORMED:
            assert j.scores == MALFORMED[r], r
    assert t.stats["unparsed"] == 0 and t.stats["malformed"] == len(MALFORMED)
    # Every rollout row says whether its reply had the form; the step counts them.
    conts = [f"word {i}" for i in range(len(js))]
    rewards = compute_rewards(js, conts, RewardConfig(), 90)
    batch = ScoredBatch([PROMPT] * len(js), conts, js, rewards, [3] * len(js))
    rows = rollout_rows("r", 1, 0, batch)
    assert [row["well_formed"] for row in rows] == [r in GOOD for r in replies]

    class Ledger:
        used = stories = generated_words = 0

    step = step_row("r", 1, Ledger(), batch, {}, (0.0, 0.0, 0.0))
    assert step["teacher_malformed"] == len(MALFORMED) and step["teacher_unparsed"] == 0
    assert np.isclose(step["parsed_share"], 1.0)


def test_well_formed():
    from storyrl.stories.rubric import well_formed

    for r in GOOD + ["2-3-1", " 1 2 3 "]:
        assert well_formed(r), r
    for r in list(MALFORMED) + ["2 2", "3 3 3 2", "12 7 9", "5 -1 2", "", None, "1 2 3 10/10"]:
        assert not well_formed(r), r


def test_tables_written_before_the_form_columns_still_read(tmp_path):
    import pyarrow.parquet as pq

    from storyrl.core.schemas import SCHEMAS, read_table, to_table

    row = {n: None for n in SCHEMAS["rollouts"].names} | {"run_id": "r", "step": 1}
    old = to_table("rollouts", [row], {}).drop_columns(["well_formed"])
    pq.write_table(old, tmp_path / "old.parquet")
    got = read_table(tmp_path / "old.parquet", "rollouts")
    assert got.column("well_formed").null_count == 1 and got.column("run_id")[0].as_py() == "r"


def test_a_run_resumed_across_the_new_columns_consolidates(tmp_path):
    import pyarrow.parquet as pq

    from storyrl.core.schemas import SCHEMAS, read_table
    from storyrl.rl.run import RunFiles

    files = RunFiles(tmp_path, {"run_id": "r"})
    for table in ("rollouts", "steps"):
        for step in (1, 2):
            row = {n: None for n in SCHEMAS[table].names} | {"run_id": "r", "step": step}
            files.write(table, step, [row])
        # Step 1's part was written before the column existed.
        old = pq.read_table(files.part(table, 1))
        extra = "well_formed" if table == "rollouts" else "teacher_malformed"
        pq.write_table(old.drop_columns([extra]), files.part(table, 1))
    files.consolidate()
    assert read_table(tmp_path / "steps.parquet", "steps").column("step").to_pylist() == [1, 2]
    assert read_table(tmp_path / "rollouts.parquet", "rollouts").num_rows == 2
