"""GRPO and RLOO through TRL's maintained trainers, with our scorer, ledger and Parquet outputs.

The scorer becomes TRL's reward function: it scores each generated batch, charges the ledger and
writes the step's rollouts; a callback writes the step row from TRL's logged metrics. When a
batch's teacher replies would pass the budget, the reward function raises before the update, so
that step is not taken. Resume uses the Trainer's own checkpoints (model, optimizer, RNG), one
when `state_due` says so (and on SIGTERM, after which the run exits with 143), with the ledger
stored beside each.
"""

import json
import logging
import math
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback

from storyrl.config import max_batches, state_due
from storyrl.core.atomic import write_text
from storyrl.core.checkpoints import load_checkpoint
from storyrl.rl.ledger import Ledger
from storyrl.rl.run import RunContext, Terminate, check_finite, student_seed
from storyrl.stories.rows import ScoredBatch
from storyrl.stories.sampling import batch_prompts
from storyrl.training.tracking import backend_environment, hf_reporting, make_run_tags

log = logging.getLogger(__name__)

# TRL's logged metric -> our steps column.
METRICS = {
    "kl": "kl",
    "entropy": "policy_entropy",
    "loss": "policy_loss",
    "clip_ratio/region_mean": "clipfrac",
}


class BudgetExhausted(Exception):
    """The batch just scored (its prompts and replies) would pass the interaction budget."""


class _Bridge(TrainerCallback):
    """The reward function and the callback, sharing the run's context (and so its ledger)."""

    def __init__(self, ctx: RunContext, tokenizer, term: Terminate):
        self.ctx, self.tokenizer, self.term, self.pending = ctx, tokenizer, term, None
        self.saved = (ctx.ledger.steps, time.monotonic())
        self.__name__ = "teacher"  # TRL names reward functions by __name__

    # --- the reward function
    def __call__(self, prompts, completions, completion_ids=None, trainer_state=None, **_):
        ctx = self.ctx
        judgements, rewards = ctx.scorer(prompts, completions)
        n_tokens = (
            [len(c) for c in completion_ids] if completion_ids is not None else [0] * len(prompts)
        )
        batch = ScoredBatch(prompts, list(completions), judgements, rewards, n_tokens)
        if not ctx.ledger.fits(prompts, batch.replies):
            raise BudgetExhausted(prompts, batch.replies)
        before = ctx.ledger.used
        ctx.ledger.charge(prompts, batch.replies, completions)
        step = ctx.ledger.steps
        ctx.write_rollouts(step, batch)
        self.pending = (step, before, batch)
        return [float(r) for r in rewards["reward"]]

    # --- the callback
    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.pending is None or logs is None or "loss" not in logs:
            return
        step, before, batch = self.pending
        stats = {ours: logs[theirs] for theirs, ours in METRICS.items() if theirs in logs}
        # Logged before the Trainer saves this step (control.should_save from on_step_end).
        check_finite(self.ctx, step, {"loss": logs["loss"], **stats}, kwargs["model"])
        self.ctx.write_step(step, batch, stats, (math.nan, math.nan, math.nan))
        self.pending = None
        self.ctx.save_crossed(before, kwargs["model"], self.tokenizer)

    def on_step_end(self, args, state, control, **kwargs):
        steps, at = self.saved
        if self.term.requested or state_due(
            self.ctx.cfg, state.global_step - steps, time.monotonic() - at
        ):
            control.should_save = True
        if self.term.requested:
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        write_text(folder / "ledger.json", json.dumps(self.ctx.ledger.state_dict()))
        self.saved = (state.global_step, time.monotonic())


def _trainer_classes(algorithm):
    if algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        return GRPOConfig, GRPOTrainer
    from trl import RLOOConfig, RLOOTrainer

    return RLOOConfig, RLOOTrainer


class TRLLoop:
    """GRPO or RLOO (`rl.algorithm`) through TRL's trainer, which runs the loop itself."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.tokenizer, self.lm = load_checkpoint(ctx.checkpoint)

    def resume(self) -> str | None:
        """The Trainer checkpoint to resume from (its ledger becomes the run's), or None."""
        ctx = self.ctx
        resume = None
        # The Trainer writes a checkpoint folder piece by piece; our ledger.json comes last
        # (on_save), so a folder without it was cut short by a kill and is dropped.
        done = []
        for folder in sorted(
            self.trl_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])
        ):
            if (folder / "ledger.json").exists():
                done.append(folder)
            else:
                shutil.rmtree(folder)
        if done:
            resume = str(done[-1])
            ctx.ledger = Ledger.from_state(json.loads((done[-1] / "ledger.json").read_text()))
            log.info("%s: resuming from %s", ctx.output, resume)
        ctx.files.drop_parts_after(ctx.ledger.steps)
        return resume

    @property
    def trl_dir(self) -> Path:
        return self.ctx.output / "trl"

    def trainer_args(self):
        cfg = self.ctx.cfg
        g, s = cfg.group, cfg.sampling
        # Every reply has at least one word in practice; the ledger stops the run earlier anyway.
        max_steps = cfg.max_steps or math.ceil(cfg.budget / cfg.batch_size) + 1
        if (cap := max_batches(cfg)) is not None:  # the prompt set: one batch a step
            max_steps = min(max_steps, cap)
        Config, _ = _trainer_classes(cfg.algorithm)
        return Config(
            output_dir=str(self.trl_dir),
            per_device_train_batch_size=cfg.batch_size,
            gradient_accumulation_steps=1,
            num_generations=g.num_generations,
            steps_per_generation=1,
            num_iterations=g.num_iterations,
            beta=g.beta,
            epsilon=g.epsilon,
            learning_rate=g.lr,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_steps=max_steps,
            max_completion_length=s.max_new_tokens,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            seed=student_seed(cfg),
            data_seed=student_seed(cfg),
            logging_steps=1,
            save_strategy="no",
            save_only_model=False,  # saves: _Bridge.on_step_end
            save_total_limit=2,
            disable_tqdm=True,
            use_cpu=self.ctx.device.type == "cpu",
            bf16=False,
            **hf_reporting(self.ctx.tracking, self.ctx.run_id),
        )

    def run(self):
        from datasets import Dataset

        ctx, cfg = self.ctx, self.ctx.cfg
        resume = self.resume()
        ctx.start_progress()
        # A step's stories are one batch: batch_size / num_generations prompts, each sampled G times.
        n_prompts = cfg.batch_size // cfg.group.num_generations
        dataset = Dataset.from_dict({"prompt": batch_prompts(cfg.prompts, n_prompts)})
        args = self.trainer_args()
        _, Trainer = _trainer_classes(cfg.algorithm)
        with Terminate() as term, backend_environment(ctx.tracking, "rl", ctx.run_id):
            bridge = _Bridge(ctx, self.tokenizer, term)
            trainer = Trainer(
                model=self.lm,
                reward_funcs=[bridge],
                args=args,
                train_dataset=dataset,
                processing_class=self.tokenizer,
                callbacks=[bridge],
            )
            trainer.add_callback(
                make_run_tags(ctx.tracking, trainer, ctx.run_id, ctx.meta["config_hash"])
            )
            try:
                trainer.train(resume_from_checkpoint=resume)
            except BudgetExhausted as stop:
                ctx.budget_stop(*stop.args)
            else:
                if term.requested:  # the Trainer saved the last step (on_step_end) and stopped
                    term.exit(ctx.output, ctx.ledger.steps)
        ctx.files.drop_parts_after(ctx.ledger.steps)
        return trainer.model, self.tokenizer
