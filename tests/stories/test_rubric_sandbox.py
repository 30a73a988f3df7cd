"""The rubric template can place text and the two story variables, nothing more: a template that
reaches Python objects through attributes, items, calls or statements is refused when it is
loaded (check-config, planning, `storyrl teacher score`), and rendering runs in Jinja2's
sandbox, so that even a template that got past the check cannot run code."""

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import AUTHORS_SHAPE, TEST_CONFIG
from storyrl.cli import main
from storyrl.config import ConfigError
from storyrl.stories.rubric import Rubric, load_rubric

PROMPT = "Once upon a time,"


def hostile(marker: Path) -> str:
    """Uses only `story_prompt` and `student_completion`, yet reaches `os.popen` through the
    subclasses of `object` (what a plain `jinja2.Template` lets it do)."""
    return (
        "Rate this.\n"
        "{% for c in story_prompt.__class__.__mro__[1].__subclasses__() %}"
        "{% if c.__name__ == '_wrap_close' %}"
        f"{{{{ c.__init__.__globals__['popen']('touch {marker}; id').read() }}}}"
        "{% endif %}{% endfor %}"
        "Opening: {{ story_prompt }}\nStory: {{ student_completion }}\nR, N, C =\n"
    )


def test_a_template_that_reaches_python_is_refused_by_check_config_and_teacher_score(
    tmp_path, server, capsys
):
    marker = tmp_path / "marker"
    template = tmp_path / "evil_rubric.md"
    template.write_text(hostile(marker))

    raw = yaml.safe_load(TEST_CONFIG.read_text())
    raw["teacher"] = {**raw.get("teacher", {}), "template": str(template)}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["check-config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "evil_rubric.md, line 2: a statement ({% for %})" in err, err

    srv = server(reply_fn=lambda msg: "3 2 1")
    stories = tmp_path / "stories.parquet"
    pd.DataFrame({"prompt": [PROMPT], "continuation": [" a cat sat."]}).to_parquet(stories)
    teacher = {"backend": "openai", "model": "m", "template": str(template)}
    teacher["openai"] = {"base_url": srv.url, "retries": 0}
    rc = main(
        [
            "teacher",
            "score",
            "--stories",
            str(stories),
            "--output",
            str(tmp_path / "scores.parquet"),
            "--section",
            json.dumps({"teacher": teacher}),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "evil_rubric.md" in err, err
    assert not marker.exists()
    assert srv.requests == []
    assert not (tmp_path / "scores.parquet").exists()


def test_the_renderer_is_sandboxed_even_past_the_load_check(tmp_path):
    import jinja2.exceptions

    marker = tmp_path / "marker"
    rubric = Rubric("evil.md", hostile(marker), "0" * 64)  # not through load_rubric
    with pytest.raises(jinja2.exceptions.SecurityError):
        rubric.render(PROMPT, " a cat sat.")
    assert not marker.exists()


@pytest.mark.parametrize(
    "body, what",
    [
        ("{{ story_prompt.upper }}", "attribute"),
        ("{{ story_prompt['x'] }}", "item"),
        ("{{ story_prompt[0] }}", "item"),
        ("{{ story_prompt|upper }}", "filter"),
        ("{{ story_prompt ~ story_prompt }}", "an expression"),
        ("{% if story_prompt %}x{% endif %}", "statement"),
        ("{% set x = 1 %}", "statement"),
        ("{{ range(3) }}", "call"),
    ],
)
def test_anything_but_plain_variables_is_refused_naming_the_file(tmp_path, body, what):
    path = tmp_path / "rubric.md"
    path.write_text(f"{body}\n{{{{ story_prompt }}}} {{{{ student_completion }}}} =\n")
    with pytest.raises(ConfigError, match=r"teacher\.template: .*rubric\.md, line 1: .*" + what):
        load_rubric(str(path))


def test_literal_text_and_the_authors_shape_still_load(tmp_path):
    path = tmp_path / "rubric.md"
    # A Jinja2 string literal is how a template writes `{{` as text.
    path.write_text("{{ '{{' }} {{ story_prompt }} {{ student_completion }} =\n")
    assert load_rubric(str(path)).render("A", "b.") == "{{ A A b. ="
    path.write_text(AUTHORS_SHAPE)
    assert load_rubric(str(path)).kind == "jinja2"
