"""An offline, deterministic PROXY teacher: no language model, only measurable properties of the
student's text. It answers in the rubric's format (`R C K`, each 0..3) so that every other part
of the workflow runs on a laptop. It is not the paper's teacher (an 8B instruction-tuned LLM)
and its numbers are not comparable with the paper's.

What it measures (on the student's own text: the unfinished sentence of the prompt that the
student completes, plus the continuation):
- readability: well-formed word sequences (no "the of", "he the", "and."), sentences that start
  with a capital and contain a verb, word-like tokens, clean punctuation (no ",,", "word .",
  unclosed quotes), no degenerate repetition;
- coherence: complete sentences, enough of them (one sentence is not a story), not cut off
  mid-sentence, continuity between neighbouring sentences (shared words, pronouns,
  connectives), no repeated sentences;
- creativity: lexical variety, descriptive and less common words, varied sentence openings and
  lengths, few stock phrases ("once upon a time", "happily ever after"), enough text to show it.
  Incomprehensible text is not creative: creativity is capped by readability and coherence.
An empty story, or one with no complete sentence of the student's own, gets `0 0 0`.
"""

import math
import re
from functools import lru_cache

VERSION = "heuristic-v2"
"""Goes into the teacher identity (and so into the cache key): bump it when scores change."""

_DET = frozenset("the a an his my your their our its every these those".split())
_PREP = frozenset(
    """of in on at from with by for into onto over under about after before
    through across behind beside between near upon without around inside toward towards among
    during""".split()
)
_CONJ = frozenset("and but or nor because although though while whereas".split())
_SUBJ = frozenset("i he she we they".split())
_PRON = _SUBJ | frozenset("you it me him us them myself himself herself itself themselves".split())
_AUX = frozenset(
    """was were is are am be been being had has have did does do will would could
    should can may might must shall""".split()
)
_OTHER_FUNCTION = frozenset(
    """that this to not no so then there here when where what who which
    how why all some any each one very too also just only as if than her up down out off""".split()
)
FUNCTION = _DET | _PREP | _CONJ | _PRON | _AUX | _OTHER_FUNCTION
_VERBS = frozenset(
    """said went saw found made took came gave knew thought told felt lived ran
    met got began became left sat stood held kept heard brought fell flew grew sang swam won
    lost hid rode wrote spoke woke ate drank built caught chose drew drove forgot fought
    led lay meant paid put read rose sent set shook shone slept spent split spread stole struck
    swept taught threw understood wore wept go goes see sees find finds make makes take takes
    come comes give gives know knows think thinks tell tells feel feels live lives run runs want
    wants like likes love loves look looks say says get gets""".split()
)
_LINKS = _PRON | frozenset(
    """then so but and one after later soon suddenly finally when while
    there that this together again also still now his her their""".split()
)
_STOCK = [
    "once upon a time",
    "in a faraway land",
    "there lived a",
    "there was a",
    "one day",
    "happily ever after",
    "the end",
    "lived happily",
    "a long time ago",
    "in the forest",
    "from that day on",
    "and they all",
    "very very",
]
_LONG_OR_RARE = re.compile(r"^[a-z]{7,}$|^[a-z]+(?:ly|ful|ous|ish|less|ive|ing)$")
_SENTENCE = re.compile(r"[^.!?]*[.!?]+[\"'”’)]*")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")
_BAD_PUNCT = re.compile(r"[,;:]\s*[,;:.!?]|\s[.,;:!?]|[.!?][A-Za-z]")
# Not word-like: letters mixed with digits, a letter three times in a row, no vowel, or a
# capital inside a lower-case word ("caTs") -- typical of broken subword output.
_BAD_TOKEN = re.compile(
    r"[0-9].*[A-Za-z]|[A-Za-z].*[0-9]|([A-Za-z])\1\1|^[^AEIOUYaeiouy0-9]+$|[a-z][A-Z]"
)


@lru_cache(maxsize=1 << 16)  # a student's vocabulary is small; this is the hot loop
def _bad_token(token: str) -> bool:
    return _BAD_TOKEN.search(token.strip(".,;:!?\"'()“”‘’-")) is not None


def student_text(prompt: str, continuation: str) -> str:
    """The unfinished last sentence of the prompt (which the student completes) + continuation."""
    cut = 0
    for m in _SENTENCE.finditer(prompt):
        cut = m.end()
    tail = prompt[cut:].strip()
    cont = continuation.strip()
    return f"{tail} {cont}" if tail and cont else (tail or cont)


def _clamp(x: float) -> int:
    return int(min(3, max(0, math.floor(x + 0.5))))


def judge(prompt: str, continuation: str, strictness: float = 1.0) -> tuple[int, int, int]:
    """Readability, coherence, creativity (0..3 each) of the student's continuation. Each is a
    continuous estimate rounded to an integer, like the LLM teacher's answer. `strictness`
    weighs the readability errors and divides the creativity estimate (1: as documented)."""
    if len(continuation.split()) < 2:
        return 0, 0, 0
    text = student_text(prompt, continuation)
    sentences, end = [], 0
    for m in _SENTENCE.finditer(text):
        words = _WORD.findall(m.group())
        if len(words) >= 2:
            sentences.append((m.group().strip(), [w.lower() for w in words]))
        end = m.end()
    # The student must finish at least one sentence with words of its own.
    if not sentences or end <= len(text) - len(continuation.strip()):
        return 0, 0, 0
    tail_words = _WORD.findall(text[end:])
    words = [w for _, ws in sentences for w in ws] + [w.lower() for w in tail_words]
    n = len(words)

    # ---------------------------------------------------------------- readability
    errors = 0.0
    for s, ws in sentences:
        if not s[0].isupper() and s[0] not in "\"'“‘":
            errors += 0.5
        if not any(w in _AUX or w in _VERBS or w.endswith("ed") for w in ws):
            errors += 1  # a fragment without a verb
        if ws[-1] in _DET or ws[-1] in _PREP or ws[-1] in _CONJ:
            errors += 1  # "... and the."
        for a, b in zip(ws, ws[1:]):
            if a == b and a not in ("very", "had", "that"):
                errors += 1
            elif a in _DET and (b in FUNCTION and b not in ("very", "one", "own")):
                errors += 1  # "the of", "a was"
            elif a in _PREP and (b in _PREP or b in _CONJ or b in _AUX or b in _SUBJ):
                errors += 1  # "of and", "with was"
            elif a in _CONJ and b in _CONJ:
                errors += 1
            elif a in _SUBJ and (b in _DET or b in _SUBJ or b in _PREP):
                errors += 1  # "he the", "she they"
    tokens = continuation.split()
    errors += sum(map(_bad_token, tokens))
    # Broken punctuation: ",,", "word ." (a stray space before a mark), "?" inside a sentence.
    errors += len(_BAD_PUNCT.findall(continuation))
    errors += sum(continuation.count(q) for q in ('"', "“", "”")) % 2  # a quote never closed
    error_rate = errors / max(n, 1)
    grams = list(zip(words, words[1:], words[2:]))
    repeated = 1 - len(set(grams)) / len(grams) if len(grams) >= 4 else 0.0
    degenerate = max(0.0, repeated - 0.1)  # natural prose repeats few trigrams
    readability = 3.2 - strictness * 25 * error_rate - strictness * 4 * degenerate

    # ---------------------------------------------------------------- coherence
    sent_words = [ws for _, ws in sentences]
    links = 0
    for prev, cur in zip(sent_words, sent_words[1:]):
        content_prev = {w[:5] for w in prev if w not in FUNCTION and len(w) > 2}
        if cur[0] in _LINKS or any(w[:5] in content_prev for w in cur if w not in FUNCTION):
            links += 1
    # One sentence is not yet a story: nothing to be coherent with (an LLM teacher rates such
    # answers low, and a proxy that does not lets RL shrink stories to one line).
    continuity = links / (len(sent_words) - 1) if len(sent_words) > 1 else 0.0
    distinct = len({" ".join(ws) for ws in sent_words}) / len(sent_words)
    complete_words = sum(len(ws) for ws in sent_words)
    coherence = (
        1.2 * min(1.0, complete_words / 50)
        + 1.2 * continuity
        + 0.8 * distinct
        - 3 * (1 - distinct)
        - 3 * degenerate
        - (1.0 if tail_words else 0.0)
    )
    coherence = min(coherence, readability + 0.25)  # word salad tells no story

    # ---------------------------------------------------------------- creativity
    content = [w for w in words if w not in FUNCTION]
    variety = len(set(content)) / len(content) if content else 0.0
    rare = sum(1 for w in content if _LONG_OR_RARE.match(w)) / max(len(content), 1)
    openers = len({ws[0] for ws in sent_words}) / len(sent_words)
    lengths = [len(ws) for ws in sent_words]
    mean = sum(lengths) / len(lengths)
    std = (sum((x - mean) ** 2 for x in lengths) / len(lengths)) ** 0.5
    spread = min(1.0, 2 * std / max(mean, 1))
    joined = " " + " ".join(w.lower() for w in _WORD.findall(continuation)) + " "  # own words
    stock = sum(joined.count(f" {p} ") * len(p.split()) for p in _STOCK) / max(n, 1)
    size = min(1.0, n / 70)
    creativity = (
        3.2 * size * (0.35 * variety + 0.3 * min(1.0, 2.5 * rare) + 0.2 * openers + 0.15 * spread)
        - 4 * stock
    ) / strictness
    creativity = min(creativity, readability, coherence + 0.5)
    return _clamp(readability), _clamp(coherence), _clamp(creativity)


class HeuristicBackend:
    name = "heuristic"
    server = None  # runs in this process
    sampling: dict = {}

    def __init__(self, strictness: float = 1.0):
        self.strictness = strictness
        # Another strictness is another judge: it must not share cached replies.
        self.model = VERSION if strictness == 1.0 else f"{VERSION}-strictness{strictness:g}"

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        return [
            " ".join(map(str, judge(p, c, self.strictness))) for p, c in zip(prompts, continuations)
        ]
