"""The parsing of the teacher's reply; the rubric template itself is storyrl.rubric."""

import re

from storyrl.rubric import (  # noqa: F401  (the teacher's names for them)
    JINJA_VARIABLES,
    PLACEHOLDERS,
    Rubric,
    load_rubric,
    resolve_template,
    student_story,
    template_kind,
)

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
