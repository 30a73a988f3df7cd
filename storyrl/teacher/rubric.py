"""The rubric template (loading, hashing, rendering) and the parsing of the teacher's reply."""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from storyrl.config import ConfigError

PLACEHOLDERS = ("{prompt}", "{story}")
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCORE = 0.5
"""docs/paper.md: the teacher score when the reply holds no integer or the call failed."""

# A minus sign counts only when it does not follow a digit: "5 -1 2" holds -1 (clamped to 0),
# while "2-3-1" is read as 2, 3, 1 rather than 2, -3, -1.
_INT = re.compile(r"(?<!\d)-?\d+")
# Every number-like token of a reply, decimals and fractions whole ("3.5", "9/9"), so that the
# form check sees what the integer parse would split.
_NUMBER = re.compile(r"(?<!\d)-?\d+(?:[./]\d+)*")


@dataclass(frozen=True)
class Rubric:
    path: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def render(self, prompt: str, continuation: str) -> str:
        """The one user message the teacher reads. Trailing whitespace is dropped so that the
        message ends with the answer line (`... =`), as the paper's prompt does."""
        # Plain replacement (not str.format): stories may hold braces.
        return (
            self.text.replace("{prompt}", prompt)
            .replace("{story}", student_story(prompt, continuation))
            .rstrip()
        )


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


def load_rubric(path: str) -> Rubric:
    file = resolve_template(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"teacher.template: cannot read {file}: {err}") from None
    missing = [ph for ph in PLACEHOLDERS if ph not in text]
    if missing:
        raise ConfigError(f"teacher.template: {file} lacks the placeholder(s) {', '.join(missing)}")
    return Rubric(path=str(file), text=text)


def parse_reply(reply: str | None) -> tuple[int, int, int] | None:
    """The paper: take all integers in the reply, clamp each to [0, 3], keep the first three.

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
    authors' parse (parse_reply) whatever the form."""
    ok = well_formed(reply)
    if mode == "paper":
        return parse_reply(reply), ok
    return (parse_reply(reply) if ok else None), ok


def weighted_score(
    scores: tuple[int, int, int] | None, weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> float:
    """Weighted sum / (3 * sum of weights), in [0, 1]; with weights 1/1/1 it is sum / 9 as in
    the paper. DEFAULT_SCORE (0.5) when nothing parsed."""
    if scores is None:
        return DEFAULT_SCORE
    return sum(w * s for w, s in zip(weights, scores)) / (3.0 * sum(weights))
