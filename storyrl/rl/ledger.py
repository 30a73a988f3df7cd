"""The interaction budget, counted as the paper counts it, and the BabyLM interaction-track check.

Budget words = the student's input during RL, as the authors' trainer charged it: the words of
every prompt of the FIRST batch (paper: 360 x 16 = 5,760), charged once with the first step,
plus the whitespace words of every teacher reply. Later batches repeat the same prompts and are
free. A step is taken only if its words still fit (the check happens once the replies are in,
before the update, so no step ever passes the budget): paper 5,760 + 920 x 1,080 = 999,360 <=
1M, so 920 steps. The student's own generated words are counted separately.
"""

from dataclasses import asdict, dataclass

from storyrl.core.units import count_words

# BabyLM 2025 interaction track (strict): input words incl. teacher text, generated words, epochs.
LIMIT_INPUT_WORDS = 100_000_000
LIMIT_GENERATED_WORDS = 100_000_000
LIMIT_EPOCHS = 10


@dataclass
class Ledger:
    budget: int
    prompt_words: int = 0
    """The first batch's prompt words (0 until the first step is charged)."""
    teacher_words: int = 0
    generated_words: int = 0
    stories: int = 0
    steps: int = 0
    skipped_batches: int = 0
    """Batches dropped uncharged by an error inside their step (`rl.on_step_error: skip`)."""

    @property
    def used(self) -> int:
        return self.prompt_words + self.teacher_words

    @property
    def batches(self) -> int:
        """Batches of the prompt set used so far: the steps taken and the batches skipped."""
        return self.steps + self.skipped_batches

    def skip(self) -> None:
        """A batch dropped by an error inside its step: it costs no words."""
        self.skipped_batches += 1

    def cost(self, prompts: list[str], replies: list[str]) -> int:
        """Budget words of a step with this batch's prompts and teacher replies."""
        first = sum(count_words(p) for p in prompts) if self.steps == 0 else 0
        return first + sum(count_words(r) for r in replies)

    def fits(self, prompts: list[str], replies: list[str]) -> bool:
        """Would a step with these prompts and teacher replies stay within the budget?"""
        return self.used + self.cost(prompts, replies) <= self.budget

    def charge(self, prompts: list[str], replies: list[str], continuations: list[str]) -> None:
        if not self.fits(prompts, replies):
            raise ValueError(f"step would pass the budget of {self.budget} words")
        if self.steps == 0:
            self.prompt_words = sum(count_words(p) for p in prompts)
        self.teacher_words += sum(count_words(r) for r in replies)
        self.generated_words += sum(count_words(c) for c in continuations)
        self.stories += len(replies)
        self.steps += 1

    def planned_steps(
        self, max_steps: int | None = None, max_batches: int | None = None
    ) -> int | None:
        """The steps the run will have taken when it ends: `max_steps`, or the steps the prompt
        set's `max_batches` leave, or sooner the steps the budget left pays for at the teacher
        words per step so far (exact when replies keep their length). None when unknown (no
        cap, no step yet)."""
        if max_batches is not None:
            left = max_batches - self.skipped_batches
            max_steps = left if max_steps is None else min(max_steps, left)
        by_budget = None
        if self.teacher_words:  # replies without words would never end the budget
            per_step = self.teacher_words / self.steps
            by_budget = self.steps + int((self.budget - self.used) // per_step)
        if max_steps is None:
            return by_budget
        return max_steps if by_budget is None else min(max_steps, by_budget)

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict) -> "Ledger":
        return cls(**state)

    def summary(
        self, pretrain_words_seen: int | None = None, corpus_words: int | None = None
    ) -> dict:
        """Totals and whether the BabyLM interaction-track limits hold. `pretrain_words_seen`:
        words the checkpoint saw in pretraining; `corpus_words`: distinct words of its corpus.
        Input words = distinct pretraining words + interaction budget words."""
        out = {**self.state_dict(), "budget_words": self.used}
        if pretrain_words_seen is not None:
            out["total_words_seen"] = pretrain_words_seen + self.used
        if corpus_words is not None:
            out["input_words"] = corpus_words + self.used
            out["input_ok"] = out["input_words"] <= LIMIT_INPUT_WORDS
            if pretrain_words_seen is not None and corpus_words > 0:
                out["epochs"] = pretrain_words_seen / corpus_words
                out["epochs_ok"] = out["epochs"] <= LIMIT_EPOCHS + 1e-9
        out["generated_ok"] = self.generated_words <= LIMIT_GENERATED_WORDS
        return out
