"""One teacher interface over several backends: cache look-up, scoring, parsing, failure check."""

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from storyrl.config import TeacherConfig
from storyrl.core.redact import portable_path
from storyrl.stories.rubric import DEFAULT_SCORE, Rubric, read_reply, weighted_score
from storyrl.stories.teacher.cache import ScoreCache, cache_key

log = logging.getLogger(__name__)


class TeacherFailure(RuntimeError):
    """Too many failed or unparseable replies in a batch: training on default rewards would be
    silent garbage, so the caller stops (and keeps its state). `judgements` holds the batch."""

    def __init__(self, message: str, judgements: list["Judgement"]):
        super().__init__(message)
        self.judgements = judgements


@dataclass(frozen=True)
class Judgement:
    reply: str
    """Raw teacher reply ("" if the call failed)."""
    scores: tuple[int, int, int] | None
    """Readability, coherence, creativity, each 0..3; None if nothing parsed."""
    parsed: bool
    failed_call: bool
    teacher_score: float
    """Weighted and normalised to [0, 1]; 0.5 when not parsed (docs/paper.md)."""
    well_formed: bool = False
    """The reply had the asked-for form, three integers 0..3 (rubric.well_formed). Only with
    `teacher.parse: paper` can a reply be parsed and not well formed."""


class Backend(Protocol):
    name: str
    model: str
    sampling: dict
    server: str | None
    """Where the model runs when that can change the reply (openai: the base URL); None: here."""

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        """One raw reply per story, None where the call failed for good."""


class Teacher:
    def __init__(
        self,
        backend: Backend,
        rubric: Rubric,
        cfg: TeacherConfig,
        cache: ScoreCache | None = None,
        weights=(1.0, 1.0, 1.0),
    ):
        self.backend, self.rubric, self.cfg, self.cache = backend, rubric, cfg, cache
        self.weights = tuple(weights)
        self.identity = {
            "backend": backend.name,
            "server": getattr(backend, "server", None),
            "model": backend.model,
            "template": portable_path(cfg.template),
            "template_sha256": rubric.sha256,
            "join": rubric.join,
            "sampling": backend.sampling,
        }
        self.stats: Counter = Counter()
        """Running totals over all batches: stories, cache_hits, failed_calls, unparsed,
        malformed (replies not in the asked-for form, parsed or not), retries (backends that
        retry)."""

    def score(self, prompts: list[str], continuations: list[str]) -> list[Judgement]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        t0 = time.perf_counter()
        keys = [cache_key(self.identity, p, c) for p, c in zip(prompts, continuations)]
        replies: list[str | None] = [None] * len(keys)
        hits = self.cache.get_many(keys) if self.cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in hits]
        for i, k in enumerate(keys):
            if k in hits:
                replies[i] = hits[k]
        if todo:
            fresh = self._replies([prompts[i] for i in todo], [continuations[i] for i in todo])
            for i, r in zip(todo, fresh):
                replies[i] = r
        out = [self._judge(r) for r in replies]
        if n_malformed := sum(not j.well_formed and j.parsed for j in out):
            log.warning(
                "teacher: %d of %d replies not in the asked-for form (three integers 0-3) but "
                "read by the paper's parse (teacher.parse=paper), e.g. %s",
                n_malformed,
                len(out),
                ", ".join([repr(j.reply[:60]) for j in out if j.parsed and not j.well_formed][:3]),
            )
        if todo and self.cache is not None:
            # Only parsed replies: a failed or unparseable one is asked again next time.
            self.cache.put_many(self.identity, {keys[i]: replies[i] for i in todo if out[i].parsed})
        n_failed = sum(j.failed_call for j in out)
        n_unparsed = sum(not j.parsed and not j.failed_call for j in out)
        n_malformed = sum(not j.well_formed and not j.failed_call for j in out)
        self.stats.update(
            stories=len(out),
            cache_hits=len(hits),
            failed_calls=n_failed,
            unparsed=n_unparsed,
            malformed=n_malformed,
        )
        self.stats["retries"] = getattr(self.backend, "retries_done", 0)
        log.debug(
            "teacher: %d stories, %d from cache, %d failed, %d unparsed in %.2fs",
            len(out),
            len(hits),
            n_failed,
            n_unparsed,
            time.perf_counter() - t0,
        )
        bad = n_failed + n_unparsed
        if not bad:
            return out
        what = (
            f"teacher {self.backend.name}:{self.backend.model}: {bad} of {len(out)} replies "
            f"failed ({n_failed} failed calls, {n_unparsed} unparseable"
        )
        if note := getattr(self.backend, "batch_note", ""):
            what += f"; {note}"
        examples = [repr(j.reply[:60]) for j in out if not j.parsed and not j.failed_call][:3]
        if examples:
            what += f", e.g. {', '.join(examples)}"
        if self.cfg.on_failure == "default":
            log.warning("%s); they score %s (teacher.on_failure=default)", what, DEFAULT_SCORE)
        elif bad / len(out) > self.cfg.max_failure_share:
            raise TeacherFailure(
                f"{what}), more than teacher.max_failure_share={self.cfg.max_failure_share}", out
            )
        return out

    def _replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        try:
            return self.backend.replies(prompts, continuations)
        except Exception as err:
            if self.cfg.on_call_error != "default":
                raise
            log.error(
                "teacher %s:%s: the call for %d stories failed (%s); none gets a reply "
                "(teacher.on_call_error=default)",
                self.backend.name,
                self.backend.model,
                len(prompts),
                err,
            )
            return [None] * len(prompts)

    def _judge(self, reply: str | None) -> Judgement:
        if reply is None:
            return Judgement("", None, False, True, weighted_score(None))
        scores, ok = read_reply(reply, self.cfg.parse)
        return Judgement(
            reply, scores, scores is not None, False, weighted_score(scores, self.weights), ok
        )

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        close = getattr(self.backend, "close", None)
        if close:
            close()
