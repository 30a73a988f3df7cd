"""Rubric template, reply parsing (FACTS), teacher score weights, reward, config wiring."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from helpers import AUTHORS_SHAPE
from storyrl.config import Config, ConfigError
from storyrl.stories.reward import compute_rewards
from storyrl.stories.rubric import (
    DEFAULT_SCORE,
    load_rubric,
    parse_reply,
    student_story,
    weighted_score,
)
from storyrl.stories.teacher import Judgement, RewardConfig, TeacherConfig

RUBRIC = Path(__file__).resolve().parents[2] / "config/prompts/teacher_rubric.txt"
PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


@pytest.mark.parametrize(
    "reply, scores, score",
    [
        ("2 3 1", (2, 3, 1), 6 / 9),
        ("Readability: 2, Narrative: 3, Creativity: 1", (2, 3, 1), 6 / 9),
        ("5 -1 2", (3, 0, 2), 5 / 9),  # clamped to [0, 3]
        ("2 2", (2, 2, 0), 4 / 9),  # fewer than three: what is there, / 9
        ("3", (3, 0, 0), 3 / 9),
        ("I cannot", None, DEFAULT_SCORE),
        ("", None, DEFAULT_SCORE),
        (None, None, DEFAULT_SCORE),  # failed call
        ("1 2 3\nThe story was lovely, 10 out of 10!", (1, 2, 3), 6 / 9),  # extra text after
        (" 3 3 3 2", (3, 3, 3), 1.0),  # only the first three count
        ("0 0 0", (0, 0, 0), 0.0),
        ("2-3-1", (2, 3, 1), 6 / 9),  # a dash between digits is not a minus
        ("12 7 9", (3, 3, 3), 1.0),
    ],
)
def test_parse_reply(reply, scores, score):
    assert parse_reply(reply) == scores
    assert weighted_score(parse_reply(reply)) == pytest.approx(score)


def test_weights_drop_a_criterion():
    assert weighted_score((3, 0, 1), (1, 0, 1)) == pytest.approx(4 / 6)
    assert weighted_score((3, 3, 0), (2, 1, 0)) == pytest.approx(1.0)
    assert weighted_score(None, (1, 0, 1)) == DEFAULT_SCORE


def test_template_renders_story_and_ends_with_answer_line():
    rubric = load_rubric(str(RUBRIC))
    assert rubric.sha256 == hashlib.sha256(RUBRIC.read_bytes()).hexdigest()
    msg = rubric.render(PROMPT, " there lived a {curious} cat.")
    assert msg.endswith("Readability, Narrative, Creativity =")
    assert f"Student's story: {PROMPT} there lived a {{curious}} cat.\n" in msg
    assert f"Story opening: {PROMPT}\n" in msg
    for needed in ("80 words", "0 0 0", "Readability", "Narrative coherence", "Creativity"):
        assert needed in msg


def test_relative_template_resolves_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repo: falls back to the checkout's root
    assert load_rubric("config/prompts/teacher_rubric.txt").text == RUBRIC.read_text()
    own = tmp_path / "config/prompts/teacher_rubric.txt"  # the working directory wins
    own.parent.mkdir(parents=True)
    own.write_text("Rate {story} (opening: {prompt})\nR, N, C =\n")
    assert (
        load_rubric("config/prompts/teacher_rubric.txt").render("A", "b.")
        == "Rate A b. (opening: A)\nR, N, C ="
    )


def test_bad_template_is_named(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("no placeholders here")
    with pytest.raises(
        ConfigError,
        match=r"t\.txt has neither the Jinja2 variables .* nor the placeholder\(s\) \{prompt\}, "
        r"\{story\}",
    ):
        load_rubric(str(bad))
    with pytest.raises(ConfigError, match="teacher.template: rubric template 'nope.txt' not found"):
        load_rubric("nope.txt")


def test_student_story_seam():
    assert student_story("land,", " there") == "land, there"
    assert student_story("land,", "there") == "land, there"
    assert student_story("land, ", "there") == "land, there"
    assert student_story("land,", "") == "land,"


def _j(scores):
    parsed = scores is not None
    return Judgement("x", scores, parsed, False, weighted_score(scores))


def test_reward_paper_formula():
    conts = [" " + " ".join(["w"] * 45), "", " a b c"]
    js = [_j((3, 3, 3)), _j((0, 0, 0)), _j(None)]
    r = compute_rewards(js, conts, RewardConfig(), max_new_tokens=90)
    np.testing.assert_allclose(r["teacher_score"], [1.0, 0.0, 0.5])
    np.testing.assert_array_equal(r["n_words"], [45, 0, 3])
    np.testing.assert_allclose(r["length_bonus"], [0.4 * 45 / 90, 0.0, 0.4 * 3 / 90])
    np.testing.assert_allclose(r["reward"], [(1 + 0.2) / 1.4, 0.0, (0.5 + 0.4 * 3 / 90) / 1.4])


def test_reward_ablations_are_config_changes():
    js, conts = [_j((3, 0, 3))], [" one two three four five six"]
    no_bonus = compute_rewards(js, conts, RewardConfig(length_coef=0), max_new_tokens=90)
    assert no_bonus["reward"][0] == pytest.approx(6 / 9)
    no_coherence = compute_rewards(js, conts, RewardConfig(weights=(1, 0, 1)), 90)
    assert no_coherence["teacher_score"][0] == pytest.approx(1.0)
    assert no_coherence["reward"][0] == pytest.approx((1.0 + 0.4 * 6 / 90) / 1.4)
    with pytest.raises(ValueError, match="weights"):
        RewardConfig(weights=(0, 0, 0))


def test_top_level_config_defaults_to_offline_teacher():
    cfg = Config.model_validate(
        {
            "corpora": {"demo": {"format": "demo"}},
            "models": {"tiny": {}},
            "pretrain": {"milestones": [1000], "runs": {"r": {"corpus": "demo", "model": "tiny"}}},
        }
    )
    assert cfg.teacher == TeacherConfig() and cfg.teacher.backend == "heuristic"
    assert cfg.reward.length_coef == 0.4 and cfg.reward.weights == (1.0, 1.0, 1.0)
    assert (cfg.teacher.temperature, cfg.teacher.max_tokens) == (0.2, 6)
    assert cfg.teacher.max_failure_share == 0.10


# Values that a renderer which re-reads its output, or an escaping one, would change.
TRICKY = [
    " there lived a {curious} cat.</s>",
    ' {{ story_prompt }} and {% if x %}y{% endif %} & <b>"quotes"</b>',
    "",
    " trailing newline\n",
]


@pytest.mark.parametrize("tail", ["\n", "", "\n\n", "  \n"])
@pytest.mark.parametrize("continuation", TRICKY)
def test_jinja2_template_renders_byte_identical_to_jinja2(tmp_path, tail, continuation):
    import jinja2

    text = AUTHORS_SHAPE.rstrip("\n") + tail
    path = tmp_path / "teacher_prompt.md"
    path.write_text(text)
    expected = jinja2.Template(text).render(
        story_prompt=PROMPT, student_completion=student_story(PROMPT, continuation)
    )
    got = load_rubric(str(path)).render(PROMPT, continuation)
    assert got.encode() == expected.encode()
    # jinja2 drops one trailing newline (keep_trailing_newline=False) and keeps the rest.
    assert got.endswith("Creativity =" + {"\n": "", "": "", "\n\n": "\n", "  \n": "  "}[tail])


@pytest.mark.parametrize("text", [AUTHORS_SHAPE, "Rate {story} (opening: {prompt})\nR, N, C =\n"])
def test_rubric_hash_is_the_template_files_sha256(tmp_path, text):
    # `sha256sum` of the file the user points at must match what the results carry, line
    # endings included.
    path = tmp_path / "teacher_prompt.md"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    assert load_rubric(str(path)).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_our_default_rubric_is_jinja2_and_renders_as_before():
    """Our rubric (labelled ours) uses the same two variables; its message is what the former
    `{prompt}`/`{story}` text gave, so the teacher reads the same words."""
    import jinja2

    text = RUBRIC.read_text()
    assert "ours" in text.splitlines()[0].lower() or "storyrl" in text.splitlines()[0]
    legacy = tmp_rubric_text(text)
    for cont in TRICKY:
        got = load_rubric(str(RUBRIC)).render(PROMPT, cont)
        assert got == jinja2.Template(text).render(
            story_prompt=PROMPT, student_completion=student_story(PROMPT, cont)
        )
        assert (
            got
            == legacy.replace("{prompt}", PROMPT)
            .replace("{story}", student_story(PROMPT, cont))
            .rstrip()
        )


def tmp_rubric_text(jinja_text: str) -> str:
    """The default rubric in the former placeholder format, without its Jinja2 comment."""
    import re

    body = re.sub(r"\{#.*?#\}\n?", "", jinja_text, flags=re.S)
    return body.replace("{{ story_prompt }}", "{prompt}").replace(
        "{{ student_completion }}", "{story}"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("Rate {{ student_completion }} =", r"lacks the Jinja2 variable\(s\) story_prompt"),
        (
            "{{ story_prompt }} {{ story }} {{ student_completion }} =",
            r"unknown Jinja2 variable\(s\) story \(known: story_prompt, student_completion\)",
        ),
        ("line one\n{{ story_prompt }\n{{ student_completion }}", r"t\.md, line 2: not a valid"),
    ],
)
def test_bad_jinja2_template_is_named(tmp_path, text, message):
    bad = tmp_path / "t.md"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"teacher\.template: .*" + message):
        load_rubric(str(bad))


def test_the_rubric_hash_travels_in_every_runs_metadata(tmp_path):
    """Rollouts, steps, summary.json and the story evaluation name the rubric that scored
    them: the sha256 of its file, as `sha256sum` prints it."""
    import json

    from rl_toys import make_checkpoint
    from storyrl.config import RLConfig, StoryEvalConfig
    from storyrl.core.schemas import read_metadata
    from storyrl.evaluate.stories import evaluate_stories
    from storyrl.rl.train import train
    from storyrl.stories.scoring import teacher_scorer

    rubric = tmp_path / "teacher_prompt.md"
    rubric.write_bytes(AUTHORS_SHAPE.replace("\n", "\r\n").encode())
    want = hashlib.sha256(rubric.read_bytes()).hexdigest()
    ckpt = make_checkpoint(tmp_path / "ckpt-20M")
    rl = RLConfig.model_validate(
        {
            "prompts": ["once upon a time"],
            "batch_size": 4,
            "max_steps": 2,
            "threads": 1,
            "sampling": {"max_new_tokens": 4},
        }
    )
    teacher = {"backend": "heuristic", "template": str(rubric)}
    with teacher_scorer(teacher, {}, 4, 42) as scorer:
        summary = train(ckpt, tmp_path / "run", rl, scorer)
        evaluate_stories(
            ckpt,
            tmp_path / "stories.parquet",
            StoryEvalConfig(n_stories=4, batch_size=4, threads=1),
            rl,
            scorer,
        )
    run = tmp_path / "run"
    for meta in (
        read_metadata(run / "rollouts.parquet"),
        read_metadata(run / "steps.parquet"),
        read_metadata(tmp_path / "stories.parquet"),
        json.loads((run / "summary.json").read_text()),
        summary,
    ):
        assert meta["teacher"]["template_sha256"] == want, meta


def test_the_paper_shows_opening_plus_continuation_as_the_authors_code_joined_them(tmp_path):
    """Their teacher read `q + r` (ppotrainer.py: `PromptCompletionPair(q, q + r)`): a
    continuation without a leading space is glued to the opening. Ours (`seam`) puts a space
    there; `teacher.join: concat` (config/paper.yaml) joins as they did."""
    import jinja2

    from storyrl.config import load
    from storyrl.stories.teacher import make_teacher

    path = tmp_path / "teacher_prompt.md"
    path.write_text(AUTHORS_SHAPE)
    teacher = make_teacher(TeacherConfig(template=str(path), join="concat"), seed=0)
    for cont in ["there", " there", ",and", ""]:
        assert teacher.rubric.render(PROMPT, cont) == jinja2.Template(AUTHORS_SHAPE).render(
            story_prompt=PROMPT, student_completion=PROMPT + cont
        )
    assert teacher.identity["join"] == "concat"  # another message: another cache key
    ours = make_teacher(TeacherConfig(template=str(path)), seed=0)
    assert f"`{PROMPT} there`" in ours.rubric.render(PROMPT, "there")
    assert load(RUBRIC.parents[1] / "paper.yaml").teacher.join == "concat"


def test_a_rubric_with_another_sha256_than_the_config_expects_is_refused(tmp_path):
    """The authors' file changed over their history; the paper config pins the version of
    4bfd376 by its sha256, so a copy of another version is refused at plan and at load."""
    from storyrl.stories.checks import _template_problem
    from storyrl.stories.teacher import make_teacher

    path = tmp_path / "teacher_prompt.md"
    path.write_text(AUTHORS_SHAPE)
    have = hashlib.sha256(path.read_bytes()).hexdigest()
    want = "0" * 64
    cfg = TeacherConfig(template=str(path), template_sha256=want)
    with pytest.raises(
        ConfigError,
        match=rf"teacher\.template: .*teacher_prompt\.md has sha256 {have}, teacher\.template_sha256 is {want}",
    ):
        make_teacher(cfg, seed=0)
    assert f"has sha256 {have}" in _template_problem(str(path), None, want)
    assert (
        make_teacher(cfg.model_copy(update={"template_sha256": have}), seed=0).rubric.sha256 == have
    )
