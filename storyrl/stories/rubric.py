"""The rubric: the template the teacher reads (loading, checking, hashing, rendering) and the
reading of the teacher's reply (its three scores and their weighted sum). Light: the workflow
checks the template when it plans, without the teacher's code.

Two template formats:
- Jinja2 (ours, and the authors' `prompts/teacher_prompt.md`): the variables `story_prompt`
  (the opening) and `student_completion` (the story the teacher grades), rendered byte for byte
  as `jinja2.Template(text).render(story_prompt=..., student_completion=...)` renders them, but
  in Jinja2's sandbox. A template holds text, those two variables and string literals only: a
  template is code, and attribute or item access, calls, filters or statements would let it
  reach Python (`story_prompt.__class__.__mro__...` leads to `os.popen`), so they are refused
  when the template is loaded.
- Placeholders `{prompt}` and `{story}` (the project's former format, still read): plain
  replacement, trailing whitespace dropped.
"""

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from storyrl.config.base import ConfigError

JINJA_VARIABLES = ("story_prompt", "student_completion")
PLACEHOLDERS = ("{prompt}", "{story}")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Rubric:
    path: str
    text: str
    """The template as read in text mode (universal newlines), as the authors' code read it."""
    sha256: str
    """sha256 of the template file's bytes: what `sha256sum FILE` prints, so results name the
    rubric that scored them."""
    kind: Literal["jinja2", "placeholders"] = "jinja2"
    join: Literal["seam", "concat"] = "seam"
    """teacher.join: how the opening and the continuation make the story shown."""

    @cached_property
    def _template(self) -> jinja2.Template:
        # The sandbox with Jinja2's default settings, which are jinja2.Template's (no
        # autoescape, one trailing newline dropped): the authors' rendering. The load-time check
        # already keeps code out; the sandbox is the second wall.
        return ImmutableSandboxedEnvironment().from_string(self.text)

    def render(self, prompt: str, continuation: str) -> str:
        """The one user message the teacher reads."""
        story = (
            prompt + continuation if self.join == "concat" else student_story(prompt, continuation)
        )
        if self.kind == "jinja2":
            return self._template.render(story_prompt=prompt, student_completion=story)
        # Plain replacement (not str.format): stories may hold braces. Trailing whitespace is
        # dropped so that the message ends with the answer line (`... =`).
        return self.text.replace("{prompt}", prompt).replace("{story}", story).rstrip()


def student_story(prompt: str, continuation: str) -> str:
    """What the teacher is shown as the student's story: prompt + continuation (as in the paper).
    A space is put between them only when neither side has whitespace at the seam, so a
    continuation decoded with its leading space is shown exactly as generated."""
    if prompt and continuation and not prompt[-1].isspace() and not continuation[0].isspace():
        return prompt + " " + continuation
    return prompt + continuation


def resolve_template(path: str) -> Path:
    """A relative template path is looked up in the current working directory first, then in
    the storyrl checkout's root (so the shipped rubric is found from any directory)."""
    p = Path(path)
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, REPO_ROOT / p]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(
        f"teacher.template: rubric template '{path}' not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + ")"
    )


def load_rubric(
    path: str, join: Literal["seam", "concat"] = "seam", expect_sha256: str | None = None
) -> Rubric:
    """The template at `path` (see resolve_template); `expect_sha256`: the file must have it."""
    file = resolve_template(path)
    try:
        raw = file.read_bytes()
        # Text mode as the authors' `open(path).read()`: CRLF becomes LF.
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"teacher.template: cannot read {file}: {err}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if expect_sha256 is not None and digest != expect_sha256:
        raise ConfigError(
            f"teacher.template: {file} has sha256 {digest}, teacher.template_sha256 is "
            f"{expect_sha256} (another version of the file, or another file)"
        )
    return Rubric(str(file), text, digest, template_kind(file, text), join)


def template_kind(file: Path, text: str) -> Literal["jinja2", "placeholders"]:
    """`jinja2` when the text uses Jinja2 variables (then exactly `story_prompt` and
    `student_completion`), else `placeholders` (then both `{prompt}` and `{story}`)."""
    where = f"teacher.template: {file}"
    try:
        ast = jinja2.Environment().parse(text)
        found = jinja2.meta.find_undeclared_variables(ast)
    except jinja2.TemplateSyntaxError as err:
        if all(ph in text for ph in PLACEHOLDERS):
            return "placeholders"  # a former-format text that happens to hold `{%` or `{#`
        raise ConfigError(
            f"{where}, line {err.lineno}: not a valid Jinja2 template ({err.message})"
        ) from None
    if why := _beyond_plain_variables(ast):
        raise ConfigError(
            f"{where}, line {why[0]}: {why[1]}; a rubric template may hold only text, string "
            "literals and the plain variables {{ story_prompt }} and {{ student_completion }}"
        )
    if found:
        unknown = sorted(found - set(JINJA_VARIABLES))
        if unknown:
            raise ConfigError(
                f"{where} uses unknown Jinja2 variable(s) {', '.join(unknown)} (known: "
                f"{', '.join(JINJA_VARIABLES)})"
            )
        missing = [v for v in JINJA_VARIABLES if v not in found]
        if missing:
            raise ConfigError(f"{where} lacks the Jinja2 variable(s) {', '.join(missing)}")
        return "jinja2"
    missing = [ph for ph in PLACEHOLDERS if ph not in text]
    if missing:
        raise ConfigError(
            f"{where} has neither the Jinja2 variables {{{{ story_prompt }}}} and "
            f"{{{{ student_completion }}}} nor the placeholder(s) {', '.join(missing)}"
        )
    return "placeholders"


# What a rubric may be made of: text, `{{ name }}` and `{{ 'literal' }}` (a template writes `{{`
# as text that way). Comments and whitespace control leave no node.
_ALLOWED = (jinja2.nodes.Template, jinja2.nodes.Output, jinja2.nodes.TemplateData)
_EXPRESSIONS = {
    jinja2.nodes.Getattr: "an attribute access",
    jinja2.nodes.Getitem: "an item access",
    jinja2.nodes.Slice: "an item access",
    jinja2.nodes.Call: "a call",
    jinja2.nodes.Filter: "a filter",
    jinja2.nodes.Test: "a test",
}


def _beyond_plain_variables(ast: jinja2.nodes.Template) -> tuple[int, str] | None:
    """(line, what) of the first node a rubric may not use, or None."""
    for node in ast.find_all(jinja2.nodes.Node):
        if isinstance(node, _ALLOWED):
            continue
        if isinstance(node, jinja2.nodes.Name) and node.ctx == "load":
            continue
        if isinstance(node, jinja2.nodes.Const) and isinstance(node.value, str):
            continue
        if isinstance(node, jinja2.nodes.Stmt):
            return node.lineno, f"a statement ({{% {type(node).__name__.lower()} %}})"
        kind = next((w for t, w in _EXPRESSIONS.items() if isinstance(node, t)), None)
        return node.lineno, kind or f"an expression ({type(node).__name__})"
    return None


DEFAULT_SCORE = 0.5
"""docs/paper.md: the teacher score when the reply holds no integer or the call failed."""

# A minus sign counts only when it does not follow a digit: "5 -1 2" holds -1 (clamped to 0),
# while "2-3-1" is read as 2, 3, 1 rather than 2, -3, -1.
_INT = re.compile(r"(?<!\d)-?\d+")
# The authors' teacher.py (`teacher.parse: paper`): digits standing alone as a word. "R2", "2nd"
# and "Score_2" hold no number for it, and the minus of "-1" is not part of the number.
_AUTHORS_INT = re.compile(r"\b\d+\b")
# Every number-like token of a reply, decimals and fractions whole ("3.5", "9/9"), so that the
# form check sees what the integer parse would split.
_NUMBER = re.compile(r"(?<!\d)-?\d+(?:[./]\d+)*")


def parse_reply(reply: str | None) -> tuple[int, int, int] | None:
    """Ours (`teacher.parse: strict` reads a well-formed reply with it): take all integers in the
    reply, clamp each to [0, 3], keep the first three.

    Our reading of the paper for replies with only one or two integers: the paper sums "the first
    three", so it sums whatever is there; we do the same by filling the missing criteria with 0
    (the sum, and so the score, is unchanged). None when the reply holds no integer at all or
    the call failed: the caller then uses DEFAULT_SCORE and marks the row as not parsed.
    """
    if not reply:
        return None
    found = [min(3, max(0, int(m))) for m in _INT.findall(reply)[:3]]
    if not found:
        return None
    return tuple(found + [0] * (3 - len(found)))


def parse_reply_authors(reply: str | None) -> tuple[int, int, int] | None:
    """The authors' reading (`teacher.parse: paper`): every run of digits that stands alone as a
    word, clamped to [0, 3], the first three; one or two numbers are summed over 9 all the same
    (the missing criteria read 0); none, None (the caller scores 0.5). So `R2 N2 C3` has no
    number, `2nd 3 1` scores 4/9, `5 -1 2` 6/9 and `Score_2 1 1` 2/9."""
    found = [min(3, max(0, int(n))) for n in _AUTHORS_INT.findall(reply or "")[:3]]
    return tuple(found + [0] * (3 - len(found))) if found else None


def well_formed(reply: str | None) -> bool:
    """Whether the reply has the form the rubric asks for: exactly three numbers, each an integer
    0..3 (labels, commas and a final stop around them are fine). `3.5 2 1`, `3/3 2/3 1/3`,
    `Score: 9/9` and `1. 3 2. 2 3. 1` are not: the paper's parse reads scores from them anyway."""
    if not reply:
        return False
    found = _NUMBER.findall(reply)
    return len(found) == 3 and all(n in ("0", "1", "2", "3") for n in found)


def read_reply(reply: str | None, mode: str = "strict") -> tuple[tuple[int, int, int] | None, bool]:
    """(scores, well_formed). `strict` (ours): only a well-formed reply has scores; `paper`: the
    authors' parse (parse_reply_authors) whatever the form."""
    ok = well_formed(reply)
    if mode == "paper":
        return parse_reply_authors(reply), ok
    return (parse_reply(reply) if ok else None), ok


def weighted_score(
    scores: tuple[int, int, int] | None, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> float:
    """Weighted sum / (3 * sum of weights), in [0, 1]; with weights 1/1/1 it is sum / 9 as in
    the paper. DEFAULT_SCORE (0.5) when nothing parsed."""
    if scores is None:
        return DEFAULT_SCORE
    return sum(w * s for w, s in zip(weights, scores)) / (3.0 * sum(weights))
