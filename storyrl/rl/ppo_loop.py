"""The paper's algorithm: our PPO (storyrl.rl.ppo) stepped by hand, one batch of prompts a step.

Resume state (`state/state.pt`): the trainer (policy, value head, reference, optimizer), the
ledger and every RNG, saved when `state_due` says so and on SIGTERM (then the run exits 143).
"""

import logging
import time

import numpy as np
import torch

from storyrl.config import max_batches, state_due
from storyrl.core.checkpoints import load_checkpoint
from storyrl.rl.ledger import Ledger
from storyrl.rl.run import (
    RunContext,
    Terminate,
    check_finite,
    rng_state,
    set_rng_state,
)
from storyrl.stories.rows import ScoredBatch
from storyrl.stories.sampling import batch_prompts, sample, seed_all
from storyrl.training.tracking import tracker

log = logging.getLogger(__name__)


class PPOLoop:
    def __init__(self, ctx: RunContext):
        from storyrl.rl.ppo import PolicyWithValue, PPOTrainer

        self.ctx = ctx
        cfg = ctx.cfg
        seed_all(cfg.seed)
        self.tokenizer, lm = load_checkpoint(ctx.checkpoint)
        _, ref = load_checkpoint(ctx.checkpoint)
        self.policy = PolicyWithValue(lm).to(
            ctx.device
        )  # the value head is drawn from the seeded RNG
        self.trainer = PPOTrainer(
            self.policy, ref.to(ctx.device), cfg.ppo, pad_id=self.tokenizer.pad_token_id
        )
        if cfg.sampling_seed is not None:
            seed_all(cfg.sampling_seed)  # where TRL 0.9.4's PPOTrainer.__init__ reseeded

    def resume(self) -> None:
        ctx = self.ctx
        state = ctx.files.load_state()
        if state is not None:
            self.trainer.load_state_dict(state["trainer"])
            ctx.ledger = Ledger.from_state(state["ledger"])
            set_rng_state(state["rng"])
            log.info(
                "%s: resuming after step %d (%d budget words)",
                ctx.output,
                ctx.ledger.steps,
                ctx.ledger.used,
            )
        ctx.files.drop_parts_after(ctx.ledger.steps)

    def save_state(self) -> None:
        self.ctx.files.save_state(
            {
                "trainer": self.trainer.state_dict(),
                "ledger": self.ctx.ledger.state_dict(),
                "rng": rng_state(),
            }
        )

    def run(self):
        ctx = self.ctx
        self.resume()
        ctx.start_progress()
        # Every steps row goes to the tracker, the budget words as the step (run.write_step).
        tags = {
            "run_id": ctx.run_id,
            "config_hash": ctx.meta["config_hash"],
            "algorithm": ctx.cfg.algorithm,
            "checkpoint": ctx.checkpoint,
        }
        with tracker(ctx.tracking, "rl", ctx.run_id, tags, step_name="budget_words") as t:
            ctx.tracker = t
            try:
                return self._loop()
            finally:
                ctx.tracker = None

    def _loop(self):
        ctx, cfg, tokenizer = self.ctx, self.ctx.cfg, self.tokenizer
        ledger = ctx.ledger
        prompts = batch_prompts(cfg.prompts, cfg.batch_size)
        cap = max_batches(cfg)
        saved_step, saved_at = ledger.steps, time.monotonic()
        with Terminate() as term:
            while cfg.max_steps is None or ledger.steps < cfg.max_steps:
                if cap is not None and ledger.batches >= cap:
                    ctx.prompts_stop(cap)
                    break
                step = ledger.steps + 1
                t0 = time.perf_counter()
                try:
                    ro, batch, rewards, times = self._sample_and_score(prompts, t0)
                    if not ledger.fits(prompts, batch.replies):
                        ctx.budget_stop(prompts, batch.replies)
                        break
                    stats, per_story = self.trainer.step(
                        ro.queries,
                        ro.responses,
                        torch.as_tensor(np.asarray(rewards["reward"], dtype=np.float32)),
                    )
                except Exception:
                    if cfg.on_step_error != "skip":
                        raise
                    self._skip(step)
                    if term.requested:
                        self.save_state()
                        term.exit(ctx.output, ledger.steps)
                    continue
                t3 = time.perf_counter()
                check_finite(ctx, step, stats, self.policy)
                before = ledger.used
                ledger.charge(prompts, batch.replies, ro.texts)
                ctx.write_rollouts(step, batch, per_story)
                ctx.write_step(step, batch, stats, (*times, t3 - t0 - sum(times)))
                ctx.save_crossed(before, self.policy.lm, tokenizer)
                log.info(
                    "step %d: budget %d words, teacher %.3f, kl %.3f, %.2fs",
                    step,
                    ledger.used,
                    float(np.mean(rewards["teacher_score"])),
                    stats["kl"],
                    t3 - t0,
                )
                if term.requested or state_due(cfg, step - saved_step, time.monotonic() - saved_at):
                    self.save_state()
                    saved_step, saved_at = step, time.monotonic()
                if term.requested:
                    term.exit(ctx.output, step)
        return self.policy.lm, tokenizer

    def _sample_and_score(self, prompts, t0):
        """The batch's stories and the scorer's verdict, and the (sample, score) seconds."""
        cfg, ledger = self.ctx.cfg, self.ctx.ledger
        ro = sample(
            self.policy.lm,
            self.tokenizer,
            prompts,
            cfg.sampling,
            train_mode=cfg.sampling.train_mode and ledger.steps > 0,
        )
        t1 = time.perf_counter()
        judgements, rewards = self.ctx.scorer(prompts, ro.texts)
        batch = ScoredBatch(prompts, ro.texts, judgements, rewards, [len(r) for r in ro.responses])
        return ro, batch, rewards, (t1 - t0, time.perf_counter() - t1)

    def _skip(self, step: int) -> None:
        """The authors' trainer on an error inside a step: log it, drop the batch uncharged and
        go on (`rl.on_step_error: skip`); `skipped_batches` counts it."""
        self.ctx.ledger.skip()
        log.exception(
            "%s: error in the step after step %d; batch skipped (%d so far, rl.on_step_error=skip)",
            self.ctx.output,
            step - 1,
            self.ctx.ledger.skipped_batches,
        )
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
