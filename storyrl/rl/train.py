"""The RL run loop: sample, score, update, log, checkpoint, until the word budget ends.

A scorer is any callable `scorer(prompts, continuations) -> (judgements, rewards)`:
`judgements` are objects with `.reply` (the teacher's raw text), `.scores` (a 3-tuple or None),
`.parsed` and `.teacher_score` (in [0, 1]); `rewards` is a dict of arrays `teacher_score`,
`length_bonus` and `reward` (what the update uses). The teacher's replies are charged to the
ledger by their whitespace words.

Output folder of a run:
    rollouts.parquet, steps.parquet   consolidated tables (schemas `rollouts`, `steps`)
    parts/{rollouts,steps}/NNNNNN.parquet   one file per step, written atomically as it ends
    state/state.pt                    resume state (`state_every`/`state_every_s`, and on SIGTERM)
    checkpoints/<words>/              HF causal-LM folder each `checkpoint_every` budget words
    final/                            the final policy (HF folder); summary.json
Every policy folder holds `storyrl_rl.json` (RL_INFO): run id, step, budget words used at the save
(`rl_words`), the multiple it stands for (`label_words`, null for final/), the pretraining
checkpoint and its pretraining words when known. Every planned checkpoint
(`planned_checkpoints`) exists once a run has finished: one the run stopped short of holds the
final policy (a warning says so).
Killed at any moment and started again, a run continues from `state/` and drops part files of
steps after it, so it redoes the steps since the state and produces the same remaining steps
(and one row per step) as an uninterrupted run. SIGTERM saves the state after the step in flight
and exits with status 143, so a job stopped at its time limit loses nothing.

Step stats: `kl` is the mean over stories of the KL to the reference summed over response
tokens, `entropy` the mean over stories of the summed -log p of the sampled tokens (both as
TRL 0.9.4 logged them), `policy_entropy` the mean per-token entropy of the policy's
distribution in the update, `ratio` the mean probability ratio over minibatches.
"""

import json
import logging
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from storyrl.atomic import atomic_path, write_text
from storyrl.rl.config import RLConfig, planned_checkpoints, state_due
from storyrl.rl.ledger import Ledger
from storyrl.rl.rollout import batch_prompts, sample
from storyrl.schemas import SCHEMAS, make_metadata, write_table
from storyrl.units import count_words, words_label

log = logging.getLogger(__name__)

RL_INFO = "storyrl_rl.json"
"""Written into every RL policy folder (checkpoints/<words>/ and final/)."""


def setup_torch(cfg: RLConfig) -> torch.device:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def load_checkpoint(checkpoint):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"{checkpoint}: not a Hugging Face model folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(checkpoint)
    if tok.eos_token_id is None:
        raise ValueError(f"{checkpoint}: the tokenizer has no eos_token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, AutoModelForCausalLM.from_pretrained(checkpoint)


# --------------------------------------------------------------------------- rows
def rollout_rows(run_id, step, budget_words, prompts, texts, judgements, rewards, n_tokens, per_story):
    rows = []
    for i, (p, c, j) in enumerate(zip(prompts, texts, judgements)):
        scores = tuple(j.scores) if j.scores is not None else (None, None, None)
        rows.append({
            "run_id": run_id, "step": step, "sample": i, "budget_words": budget_words,
            "prompt": p, "continuation": c, "teacher_reply": j.reply,
            "readability": scores[0], "coherence": scores[1], "creativity": scores[2],
            "parsed": bool(j.parsed), "teacher_score": float(rewards["teacher_score"][i]),
            "length_bonus": float(rewards["length_bonus"][i]), "reward": float(rewards["reward"][i]),
            "n_tokens": int(n_tokens[i]), "n_words": count_words(c),
            "logprob_sum": float(per_story["logprob_sum"][i]) if per_story else None,
            "kl": float(per_story["kl"][i]) if per_story else None,
        })
    return rows


def step_row(run_id, step, ledger, judgements, rewards, n_tokens, texts, stats, times):
    r = {k: np.asarray(v, dtype=float) for k, v in rewards.items()}
    row = {name: float("nan") for name in SCHEMAS["steps"].names}
    row.update({k: v for k, v in stats.items() if k in row})
    row.update({
        "run_id": run_id, "step": step, "budget_words": ledger.used, "stories": ledger.stories,
        "generated_words": ledger.generated_words,
        "teacher_score_mean": r["teacher_score"].mean(), "teacher_score_std": r["teacher_score"].std(ddof=1),
        "length_bonus_mean": r["length_bonus"].mean(), "length_bonus_std": r["length_bonus"].std(ddof=1),
        "reward_mean": r["reward"].mean(), "reward_std": r["reward"].std(ddof=1),
        "parsed_share": float(np.mean([bool(j.parsed) for j in judgements])),
        # Replies that scored the default 0.5 (teacher.on_failure: default lets training go on).
        "teacher_failed_calls": sum(bool(getattr(j, "failed_call", False)) for j in judgements),
        "teacher_unparsed": sum(not j.parsed and not getattr(j, "failed_call", False)
                                for j in judgements),
        "response_tokens_mean": float(np.mean(n_tokens)),
        "response_words_mean": float(np.mean([count_words(t) for t in texts])),
        "time_sample_s": times[0], "time_score_s": times[1], "time_update_s": times[2],
    })
    return row


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
            tbl = (pa.concat_tables([pq.read_table(f) for f in files]) if files
                   else SCHEMAS[table].empty_table())
            write_table(self.out / f"{table}.parquet", table, tbl.to_pydict(), make_metadata(table, **self.meta))

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


def rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_hf(path, lm, tokenizer, info: dict | None = None) -> None:
    """An HF folder, atomically; `info` (if given) goes into it as RL_INFO."""
    with atomic_path(path, is_dir=True) as tmp:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if info is not None:
            (Path(tmp) / RL_INFO).write_text(json.dumps(info, indent=2) + "\n")


def checkpoint_words(checkpoint) -> int | None:
    """Pretraining words of a pretraining checkpoint, from its CHECKPOINT_INFO (the milestone it
    was saved for, else the words it had seen); None if the folder has none."""
    from storyrl.pretrain import CHECKPOINT_INFO
    f = Path(checkpoint) / CHECKPOINT_INFO
    if not f.exists():
        return None
    info = json.loads(f.read_text())
    words = info.get("milestone_words", info.get("words_seen"))
    return int(words) if words is not None else None


def rl_info(base: dict, ledger: Ledger, label_words: int | None) -> dict:
    """The RL_INFO of a policy saved now: `base` holds run_id, pretrain_checkpoint, pretrain_words."""
    return {"run_id": base["run_id"], "step": ledger.steps, "rl_words": ledger.used,
            "label_words": label_words, "pretrain_checkpoint": base["pretrain_checkpoint"],
            "pretrain_words": base["pretrain_words"]}


def info_base(run_id: str, checkpoint, pretrain_words_seen: int | None) -> dict:
    """The fixed part of RL_INFO; pretrain_words: the checkpoint's milestone from its
    CHECKPOINT_INFO, else the words it saw in pretraining as the caller gave them (or None)."""
    words = checkpoint_words(checkpoint)
    return {"run_id": run_id, "pretrain_checkpoint": str(checkpoint),
            "pretrain_words": words if words is not None else pretrain_words_seen}


def save_crossed(output, cfg: RLConfig, before: int, ledger: Ledger, lm, tokenizer, base: dict) -> None:
    """Save the policy under every multiple of `checkpoint_every` that this step's budget words
    crossed (one, except when a step is longer than `checkpoint_every`)."""
    k = cfg.checkpoint_every
    for m in range((before // k + 1) * k, ledger.used + 1, k):
        save_hf(Path(output) / "checkpoints" / words_label(m), lm, tokenizer, rl_info(base, ledger, m))


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
        log.warning("%s: stopped by SIGTERM after step %d; state saved, start again to resume", output, step)
        raise SystemExit(143)


def student_seed(cfg: RLConfig) -> int:
    """The seed of the student's RNG (`sampling_seed`, else the run's `seed`)."""
    return cfg.seed if cfg.sampling_seed is None else cfg.sampling_seed


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- the loop
def train(checkpoint, output, cfg: RLConfig, scorer, run_id: str | None = None,
          pretrain_words_seen: int | None = None, corpus_words: int | None = None) -> dict:
    """Run RL from `checkpoint` into `output` until the budget (or `max_steps`) ends; resumes."""
    output = Path(output)
    run_id = run_id or output.name
    device = setup_torch(cfg)
    meta = {"run_id": run_id, "checkpoint": str(checkpoint), "seed": cfg.seed,
            "sampling_seed": student_seed(cfg), "algorithm": cfg.algorithm,
            "config_hash": make_metadata("x", cfg.model_dump())["config_hash"],
            "teacher": getattr(getattr(scorer, "teacher", None), "identity", None)}
    files = RunFiles(output, meta)
    base = info_base(run_id, checkpoint, pretrain_words_seen)
    if (output / "summary.json").exists() and (output / "final" / "config.json").exists():
        log.info("%s: already finished", output)
        return json.loads((output / "summary.json").read_text())
    if cfg.algorithm != "ppo":
        from storyrl.rl.trl_algos import train_trl
        return train_trl(checkpoint, output, cfg, scorer, files, device, pretrain_words_seen, corpus_words,
                         base)

    from storyrl.rl.ppo import PolicyWithValue, PPOTrainer
    seed_all(cfg.seed)
    tokenizer, lm = load_checkpoint(checkpoint)
    _, ref = load_checkpoint(checkpoint)
    policy = PolicyWithValue(lm).to(device)  # the value head is drawn from the seeded RNG
    trainer = PPOTrainer(policy, ref.to(device), cfg.ppo, pad_id=tokenizer.pad_token_id)
    if cfg.sampling_seed is not None:
        seed_all(cfg.sampling_seed)  # where TRL 0.9.4's PPOTrainer.__init__ reseeded
    ledger = Ledger(cfg.budget)

    state = files.load_state()
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        ledger = Ledger.from_state(state["ledger"])
        set_rng_state(state["rng"])
        log.info("%s: resuming after step %d (%d budget words)", output, ledger.steps, ledger.used)
    files.drop_parts_after(ledger.steps)

    prompts = batch_prompts(cfg.prompts, cfg.batch_size)
    saved_step, saved_at = ledger.steps, time.monotonic()
    with Terminate() as term:
        while cfg.max_steps is None or ledger.steps < cfg.max_steps:
            step = ledger.steps + 1
            t0 = time.perf_counter()
            ro = sample(policy.lm, tokenizer, prompts, cfg.sampling,
                        train_mode=cfg.sampling.train_mode and ledger.steps > 0)
            t1 = time.perf_counter()
            judgements, rewards = scorer(prompts, ro.texts)
            replies = [j.reply for j in judgements]
            t2 = time.perf_counter()
            if not ledger.fits(prompts, replies):
                log.info("%s: the next step would pass the budget (%d words); stopping", output, cfg.budget)
                break
            stats, per_story = trainer.step(ro.queries, ro.responses,
                                            torch.as_tensor(np.asarray(rewards["reward"], dtype=np.float32)))
            t3 = time.perf_counter()
            before = ledger.used
            ledger.charge(prompts, replies, ro.texts)
            n_tokens = [len(r) for r in ro.responses]
            files.write("rollouts", step, rollout_rows(run_id, step, ledger.used, prompts, ro.texts,
                                                       judgements, rewards, n_tokens, per_story))
            files.write("steps", step, [step_row(run_id, step, ledger, judgements, rewards, n_tokens,
                                                 ro.texts, stats, (t1 - t0, t2 - t1, t3 - t2))])
            save_crossed(output, cfg, before, ledger, policy.lm, tokenizer, base)
            log.info("step %d: budget %d words, teacher %.3f, kl %.3f, %.2fs", step, ledger.used,
                     float(np.mean(rewards["teacher_score"])), stats["kl"], t3 - t0)
            if term.requested or state_due(cfg, step - saved_step, time.monotonic() - saved_at):
                files.save_state({"trainer": trainer.state_dict(), "ledger": ledger.state_dict(),
                                  "rng": rng_state()})
                saved_step, saved_at = step, time.monotonic()
            if term.requested:
                term.exit(output, step)

    return finish(output, cfg, files, policy.lm, tokenizer, ledger, pretrain_words_seen, corpus_words, base)


def finish(output, cfg, files, lm, tokenizer, ledger, pretrain_words_seen, corpus_words, base) -> dict:
    files.consolidate()
    output = Path(output)
    for m in planned_checkpoints(cfg):
        path = output / "checkpoints" / words_label(m)
        if not (path / "config.json").exists():
            log.warning("%s: the run stopped at %d budget words, before checkpoint %s; saving the "
                        "final policy (step %d) under that label", output, ledger.used,
                        words_label(m), ledger.steps)
            save_hf(path, lm, tokenizer, rl_info(base, ledger, m))
    save_hf(output / "final", lm, tokenizer, rl_info(base, ledger, None))
    summary = ledger.summary(pretrain_words_seen, corpus_words)
    write_text(output / "summary.json", json.dumps(summary, indent=2))
    return summary
