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

import numpy as np
from transformers import TrainerCallback

from storyrl.atomic import write_text
from storyrl.rl.config import RLConfig, state_due
from storyrl.rl.ledger import Ledger
from storyrl.rl.rollout import batch_prompts
from storyrl.rl.train import (Terminate, finish, load_checkpoint, rollout_rows, save_crossed, step_row,
                               student_seed)

log = logging.getLogger(__name__)

# TRL's logged metric -> our steps column.
METRICS = {"kl": "kl", "entropy": "policy_entropy", "loss": "policy_loss",
           "clip_ratio/region_mean": "clipfrac"}


class BudgetExhausted(Exception):
    """The batch just scored would pass the interaction budget."""


class _Bridge(TrainerCallback):
    """Holds the ledger; the reward function and the callback share it."""

    def __init__(self, cfg, scorer, files, ledger, tokenizer, output, base, term):
        self.cfg, self.scorer, self.files, self.ledger, self.base = cfg, scorer, files, ledger, base
        self.tokenizer, self.output, self.pending, self.term = tokenizer, Path(output), None, term
        self.saved = (ledger.steps, time.monotonic())
        self.__name__ = "teacher"  # TRL names reward functions by __name__

    # --- the reward function
    def __call__(self, prompts, completions, completion_ids=None, trainer_state=None, **_):
        judgements, rewards = self.scorer(prompts, completions)
        replies = [j.reply for j in judgements]
        if not self.ledger.fits(prompts, replies):
            raise BudgetExhausted
        before = self.ledger.used
        self.ledger.charge(prompts, replies, completions)
        step = self.ledger.steps
        n_tokens = [len(c) for c in completion_ids] if completion_ids is not None else [0] * len(prompts)
        self.files.write("rollouts", step, rollout_rows(self.files.meta["run_id"], step, self.ledger.used,
                                                        prompts, completions, judgements, rewards, n_tokens, None))
        self.pending = (step, before, judgements, rewards, n_tokens, list(completions))
        return [float(r) for r in rewards["reward"]]

    # --- the callback
    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.pending is None or logs is None or "loss" not in logs:
            return
        step, before, judgements, rewards, n_tokens, texts = self.pending
        stats = {ours: logs[theirs] for theirs, ours in METRICS.items() if theirs in logs}
        row = step_row(self.files.meta["run_id"], step, self.ledger, judgements, rewards, n_tokens, texts,
                       stats, (math.nan, math.nan, math.nan))
        self.files.write("steps", step, [row])
        self.pending = None
        save_crossed(self.output, self.cfg, before, self.ledger, kwargs["model"], self.tokenizer, self.base)

    def on_step_end(self, args, state, control, **kwargs):
        steps, at = self.saved
        if self.term.requested or state_due(self.cfg, state.global_step - steps, time.monotonic() - at):
            control.should_save = True
        if self.term.requested:
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        write_text(folder / "ledger.json", json.dumps(self.ledger.state_dict()))
        self.saved = (state.global_step, time.monotonic())


def _trainer_classes(algorithm):
    if algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer
        return GRPOConfig, GRPOTrainer
    from trl import RLOOConfig, RLOOTrainer
    return RLOOConfig, RLOOTrainer


def train_trl(checkpoint, output, cfg: RLConfig, scorer, files, device, pretrain_words_seen, corpus_words,
              base):
    from datasets import Dataset

    output = Path(output)
    tokenizer, lm = load_checkpoint(checkpoint)
    g, s = cfg.group, cfg.sampling
    ledger = Ledger(cfg.budget)
    trl_dir = output / "trl"
    resume = None
    # The Trainer writes a checkpoint folder piece by piece; our ledger.json comes last (on_save),
    # so a folder without it was cut short by a kill and is dropped.
    done = []
    for folder in sorted(trl_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        if (folder / "ledger.json").exists():
            done.append(folder)
        else:
            shutil.rmtree(folder)
    if done:
        resume = str(done[-1])
        ledger = Ledger.from_state(json.loads((done[-1] / "ledger.json").read_text()))
        log.info("%s: resuming from %s", output, resume)
    files.drop_parts_after(ledger.steps)

    # A step's stories are one batch: batch_size / num_generations prompts, each sampled G times.
    n_prompts = cfg.batch_size // g.num_generations
    dataset = Dataset.from_dict({"prompt": batch_prompts(cfg.prompts, n_prompts)})
    # Every reply has at least one word in practice; the ledger stops the run earlier anyway.
    max_steps = cfg.max_steps or math.ceil(cfg.budget / cfg.batch_size) + 1
    Config, Trainer = _trainer_classes(cfg.algorithm)
    args = Config(
        output_dir=str(trl_dir), per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=1,
        num_generations=g.num_generations, steps_per_generation=1, num_iterations=g.num_iterations,
        beta=g.beta, epsilon=g.epsilon, learning_rate=g.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, max_steps=max_steps, max_completion_length=s.max_new_tokens,
        temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
        seed=student_seed(cfg), data_seed=student_seed(cfg),
        logging_steps=1, save_strategy="no", save_only_model=False,  # saves: _Bridge.on_step_end
        save_total_limit=2,
        report_to=[], disable_tqdm=True, use_cpu=device.type == "cpu", bf16=False,
    )
    with Terminate() as term:
        bridge = _Bridge(cfg, scorer, files, ledger, tokenizer, output, base, term)
        trainer = Trainer(model=lm, reward_funcs=[bridge], args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[bridge])
        try:
            trainer.train(resume_from_checkpoint=resume)
        except BudgetExhausted:
            log.info("%s: the next step would pass the budget (%d words); stopping", output, cfg.budget)
        else:
            if term.requested:  # the Trainer saved the last step (on_step_end) and stopped
                term.exit(output, ledger.steps)
    files.drop_parts_after(ledger.steps)
    return finish(output, cfg, files, trainer.model, tokenizer, ledger, pretrain_words_seen, corpus_words, base)
