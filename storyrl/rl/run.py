"""What every RL algorithm shares: the run's context (id, config, files, ledger, metadata), its
output folder, the policy saves, SIGTERM handling and the RNG state.

The folder's layout is described in storyrl.rl.train; each policy folder's RL_INFO record in
storyrl.core.checkpoints.
"""

import json
import logging
import math
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from storyrl.config import (
    ConfigError,
    RLConfig,
    TrackingConfig,
    max_batches,
    planned_checkpoints,
)
from storyrl.config.rl import REPLY_WORDS
from storyrl.core.atomic import atomic_path, write_text
from storyrl.core.checkpoints import save_checkpoint
from storyrl.core.redact import portable_ids
from storyrl.core.schemas import SCHEMAS, make_metadata, write_table
from storyrl.core.units import count_words, words_label
from storyrl.rl.ledger import Ledger
from storyrl.stories.rows import ScoredBatch, rollout_rows, step_row
from storyrl.stories.scoring import Scorer
from storyrl.training.progress import Progress

log = logging.getLogger(__name__)


class RunFiles:
    """The run's folder: part files per step, consolidated tables, resume state."""

    def __init__(self, output, meta: dict):
        self.out, self.meta = Path(output), meta

    def part(self, table: str, step: int) -> Path:
        return self.out / "parts" / table / f"{step:06d}.parquet"

    def write(self, table: str, step: int, rows: list[dict]) -> None:
        write_table(self.part(table, step), table, rows, make_metadata(table, **self.meta))

    def drop_parts_after(self, step: int) -> None:
        for table in ("rollouts", "steps"):
            for f in sorted((self.out / "parts" / table).glob("*.parquet")):
                if int(f.stem) > step:
                    f.unlink()

    def consolidate(self) -> None:
        for table in ("rollouts", "steps"):
            files = sorted((self.out / "parts" / table).glob("*.parquet"))
            tbl = (
                # "default": parts written before a column was added (a run resumed across
                # an upgrade) get nulls there.
                pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
                if files
                else SCHEMAS[table].empty_table()
            )
            write_table(
                self.out / f"{table}.parquet",
                table,
                tbl.to_pydict(),
                make_metadata(table, **self.meta),
            )

    @property
    def state_path(self) -> Path:
        return self.out / "state" / "state.pt"

    def save_state(self, state: dict) -> None:
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)

    def load_state(self) -> dict | None:
        if not self.state_path.exists():
            return None
        return torch.load(self.state_path, weights_only=False)


@dataclass
class RunContext:
    """One RL run: who it is, what it reads and writes, and its ledger. An algorithm gets it,
    resumes its `ledger`, and records each step through it."""

    run_id: str
    checkpoint: str
    """The pretraining checkpoint the run starts from."""
    output: Path
    cfg: RLConfig
    scorer: Scorer
    device: torch.device
    files: RunFiles
    pretrain_words: int | None
    """For RL_INFO: the checkpoint's milestone, else the words it saw as the caller gave them."""
    pretrain_words_seen: int | None = None
    """For the summary: the words the checkpoint saw in pretraining, as the caller gave them."""
    corpus_words: int | None = None
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """Where metrics go and how often progress is logged (storyrl.training.tracking)."""
    ledger: Ledger = field(init=False)
    """Fresh at the start; an algorithm that resumes replaces it with the saved one."""
    tracker: object = None
    """The open storyrl.training.tracking.Tracker that gets every steps row (the PPO loop's; TRL's
    trainers report through their own `report_to`)."""
    progress: Progress | None = field(init=False, default=None)
    stopped: dict | None = field(init=False, default=None)
    """Why the run ended (summary.json's `stopped`), set by `budget_stop` or `prompts_stop`;
    None: its steps (`max_steps`, or TRL's own step limit) ran out."""

    def __post_init__(self):
        self.ledger = Ledger(self.cfg.budget)

    @property
    def meta(self) -> dict:
        """The run's ids that every table it writes carries."""
        return self.files.meta

    @property
    def finished(self) -> bool:
        return (self.output / "summary.json").exists() and (
            self.output / "final" / "config.json"
        ).exists()

    # ------------------------------------------------------------------ step records
    def write_rollouts(self, step: int, batch: ScoredBatch, per_story: dict | None = None) -> None:
        self.files.write(
            "rollouts", step, rollout_rows(self.run_id, step, self.ledger.used, batch, per_story)
        )

    def write_step(self, step: int, batch: ScoredBatch, stats: dict, times) -> None:
        row = step_row(self.run_id, step, self.ledger, batch, stats, times)
        self.files.write("steps", step, [row])
        if self.tracker is not None:
            self.tracker.log(row, step=row["budget_words"])
        self.report_progress(step, row)

    def start_progress(self) -> None:
        """Start timing steps; after a resume (the ledger's steps took their time elsewhere)."""
        self.progress = Progress(
            f"rl {self.run_id}",
            self.ledger.planned_steps(self.cfg.max_steps, max_batches(self.cfg)),
            self.tracking.progress_every_s,
            start=self.ledger.steps,
        )

    def report_progress(self, step: int, row: dict) -> None:
        """Step k of the steps planned from the ledger (storyrl.training.progress)."""
        if self.progress is None:
            self.start_progress()
        self.progress.update(
            step,
            words=self.ledger.used,
            total=self.ledger.planned_steps(self.cfg.max_steps, max_batches(self.cfg)),
            score=row["teacher_score_mean"],
            kl=row["kl"],
        )

    def budget_stop(self, prompts: list[str], replies: list[str]) -> None:
        """The step just scored would pass the budget: the run ends before it."""
        ledger, words = self.ledger, [count_words(r) for r in replies]
        self.stopped = {
            "reason": "budget",
            "after_step": ledger.steps,
            "detail": (
                f"the next step's teacher replies take {sum(words)} words (the longest "
                f"{max(words, default=0)}); with its prompts that is "
                f"{ledger.cost(prompts, replies)} words, and {ledger.budget - ledger.used} of "
                f"the budget of {ledger.budget} are left"
            ),
        }
        log.info(
            "%s: the next step would pass the budget (%d words); stopping",
            self.output,
            self.cfg.budget,
        )

    def prompts_stop(self, cap: int) -> None:
        """The prompt set's batches (`rl.max_prompts`) are used: the run ends there."""
        ledger = self.ledger
        self.stopped = {
            "reason": "prompts",
            "after_step": ledger.steps,
            "detail": (
                f"the prompt set's {cap} batches (rl.max_prompts={self.cfg.max_prompts}) are "
                f"used, {ledger.skipped_batches} of them skipped; {ledger.budget - ledger.used} "
                f"of the budget of {ledger.budget} words are left"
            ),
        }
        log.info("%s: %s; stopping", self.output, self.stopped["detail"])

    def planned_steps(self) -> int:
        """The steps the run was planned to take: those its budget pays for when every teacher
        reply has the asked-for form (REPLY_WORDS words, as `budget_problem` counts), or
        `max_steps` or the prompt set's batches (`max_prompts`) when fewer."""
        per_step = REPLY_WORDS * self.cfg.batch_size
        left = self.cfg.budget - self.ledger.prompt_words - per_step
        steps = 1 + left // per_step if left >= 0 else 0
        for cap in (self.cfg.max_steps, max_batches(self.cfg)):
            steps = steps if cap is None else min(steps, cap)
        return steps

    def stop_record(self) -> dict:
        """summary.json's `stopped`; a run that ended before its planned steps says so."""
        record = self.stopped or {
            "reason": "max_steps",
            "after_step": self.ledger.steps,
            "detail": f"rl.max_steps={self.cfg.max_steps}"
            if self.cfg.max_steps is not None
            else "the trainer's step limit",
        }
        record = {**record, "planned_steps": self.planned_steps()}
        if record["after_step"] < record["planned_steps"]:
            log.warning(
                "%s: the run ended after step %d of the %d its budget plans for at %d words per "
                "teacher reply: %s",
                self.output,
                record["after_step"],
                record["planned_steps"],
                REPLY_WORDS,
                record["detail"],
            )
        return record

    # ------------------------------------------------------------------ policy saves
    def rl_info(self, label_words: int | None) -> dict:
        """The RL_INFO of a policy saved now."""
        return {
            "run_id": self.run_id,
            "step": self.ledger.steps,
            "rl_words": self.ledger.used,
            "label_words": label_words,
            "pretrain_checkpoint": self.checkpoint,
            "pretrain_words": self.pretrain_words,
        }

    def save_crossed(self, before: int, lm, tokenizer) -> None:
        """Save the policy under every multiple of `checkpoint_every` that this step's budget
        words (from `before` to now) crossed (one, except when a step is longer than
        `checkpoint_every`)."""
        k = self.cfg.checkpoint_every
        for m in range((before // k + 1) * k, self.ledger.used + 1, k):
            save_checkpoint(
                self.output / "checkpoints" / words_label(m), lm, tokenizer, self.rl_info(m)
            )

    def finish(self, lm, tokenizer) -> dict:
        """Consolidate the tables, save the final policy, link every planned checkpoint the run
        stopped short of to it, write summary.json and return it."""
        if self.progress is not None:
            self.progress.close()
        self.files.consolidate()
        ledger = self.ledger
        if ledger.steps == 0:
            # Publishing now would name the untouched starting checkpoint an RL policy.
            raise ConfigError(
                f"{self.output}: rl.budget {ledger.budget} words ended before the first step "
                "(its prompts and teacher replies cost more); nothing published"
            )
        save_checkpoint(self.output / "final", lm, tokenizer, self.rl_info(None))
        link_unreached(self.output, planned_checkpoints(self.cfg), ledger)
        summary = ledger.summary(self.pretrain_words_seen, self.corpus_words)
        summary["stopped"] = self.stop_record()
        # The teacher and its rubric's sha256, as in the tables' metadata: a summary shared on
        # its own still says what scored the run.
        if self.files.meta.get("teacher") is not None:
            summary["teacher"] = portable_ids(self.files.meta["teacher"])
        write_text(self.output / "summary.json", json.dumps(summary, indent=2))
        return summary


def link_unreached(output: Path, planned: list[int], ledger: Ledger) -> None:
    """Make each planned checkpoint the run did not reach a relative link to final/: the
    workflow evaluates every planned label, and a run stopped by `max_steps` would otherwise
    hold one full copy of the final policy per label (99 for 2 steps of a 30K budget)."""
    missing = [m for m in planned if not (output / "checkpoints" / words_label(m)).is_dir()]
    if not missing:
        return
    log.warning(
        "%s: the run stopped at %d budget words (step %d), before checkpoints %s; each is a "
        "link to final/",
        output,
        ledger.used,
        ledger.steps,
        ", ".join(words_label(m) for m in missing),
    )
    for m in missing:
        path = output / "checkpoints" / words_label(m)
        # A link left dangling (final/ removed by a failed job) is replaced in one rename.
        tmp = path.with_name(f".{path.name}.link")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("..") / "final", target_is_directory=True)
        tmp.replace(path)


class Diverged(RuntimeError):
    """A step produced non-finite losses or weights; nothing of it was written."""


MAY_BE_NAN = {"value_var_explained"}
"""Step stats that are NaN in a healthy run (no variance in the returns)."""


def check_finite(ctx: "RunContext", step: int, stats: dict, model) -> None:
    """Stop the run before anything of a diverged step is written: its rows, its checkpoints and
    above all the resume state, which a rerun would resume from."""
    bad = sorted(
        k
        for k, v in stats.items()
        if k not in MAY_BE_NAN and isinstance(v, float | int) and not math.isfinite(v)
    )
    if not bad:
        bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()][:3]
        bad = [f"weights {', '.join(bad)}"] if bad else []
    if bad:
        raise Diverged(
            f"{ctx.output}: step {step} diverged (non-finite {'; '.join(bad)}); nothing of it "
            f"was written, the last resume state saved (step {ctx.ledger.steps} or earlier) is "
            "kept. Lower the learning rate (ppo.lr or group.lr) and start again in a new folder"
        )


class Terminate:
    """While active, SIGTERM only sets `requested`: the loop ends the step in flight, saves its
    state and exits with 143 (a half-done step cannot be saved)."""

    requested = False

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._set)
        return self

    def _set(self, *_):
        self.requested = True

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    def exit(self, output, step: int):
        log.warning(
            "%s: stopped by SIGTERM after step %d; state saved, start again to resume", output, step
        )
        raise SystemExit(143)


# --------------------------------------------------------------------------- RNG
def student_seed(cfg: RLConfig) -> int:
    """The seed of the student's RNG (`sampling_seed`, else the run's `seed`)."""
    return cfg.seed if cfg.sampling_seed is None else cfg.sampling_seed


def rng_state() -> dict:
    s = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
