"""Pretraining: one GPT-2 run with the transformers Trainer, keeping a checkpoint at every word
milestone, resumable from its last saved state.

Layout of a run folder (`work_dir`, not a Snakemake output, so it survives a failed job):
    work_dir/run_config.json         the settings the state belongs to
    work_dir/.storyrl.lock           locked while a process writes the run (storyrl.training.run_lock)
    work_dir/checkpoint-<step>/      Trainer resume states (newest `keep_states` kept)
    work_dir/milestones/ckpt-<W>/    a Hugging Face folder per milestone, exported when reached
    work_dir/log.parquet             the pretraining log so far
The milestone folders and the log are `storyrl.pretrain.export`'s, and its `publish` then links
them to the rule's outputs.

Data-parallel runs are started by torchrun, one process per GPU (the `pretrain` rule does this
for resources gpu > 1): every process trains, rank 0 alone touches the run folder, and all stop
at the same step on SIGTERM. One process that sees several GPUs is refused, since the Trainer
would fall back to DataParallel and train on several times the batch.
"""

import logging
import math
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from transformers import (
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from storyrl.config import ConfigError, ModelConfig, TrackingConfig, TrainingConfig
from storyrl.core.checkpoints import tokenizer_fingerprint
from storyrl.core.device import DeviceError
from storyrl.core.hf_compat import fuse_gelu
from storyrl.core.schemas import make_metadata
from storyrl.core.units import checkpoint_name, words_label
from storyrl.data.tokens import load_tokens
from storyrl.pretrain.export import Milestones, write_log
from storyrl.pretrain.schedule import Plan, count_blocks, plan_run  # noqa: F401  (re-exported)
from storyrl.training import tracking as tr
from storyrl.training.progress import Progress, quiet_library_bars
from storyrl.training.run_config import check_run_config
from storyrl.training.run_lock import holds_run_folder

log = logging.getLogger(__name__)

SPEED_ONLY = {"compile", "fused_adamw", "fused_gelu", "pad_batches"}
"""Training settings that change kernels, not the run: a state saved with them on resumes with
them off and the other way round (the optimizer's state is the same for both AdamWs)."""


class Blocks(torch.utils.data.Dataset):
    """Non-overlapping blocks of the token stream, cut per group of rows when `groups` (tokens
    per group, in stream order) is given, else over the whole stream; each part's tail shorter
    than a block is dropped."""

    def __init__(self, tokens: np.ndarray, block: int, groups: list[int] | None = None):
        lengths = np.asarray(groups or [len(tokens)], dtype=np.int64)
        if lengths.sum() != len(tokens):
            raise ValueError(f"groups cover {lengths.sum()} tokens, the stream has {len(tokens)}")
        per_group = lengths // block
        group_start = np.repeat(np.cumsum(lengths) - lengths, per_group)
        index_in_group = np.arange(per_group.sum()) - np.repeat(
            np.cumsum(per_group) - per_group, per_group
        )
        self.starts = group_start + block * index_in_group
        self.tokens, self.block = tokens, block

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        start = self.starts[i]
        ids = torch.from_numpy(self.tokens[start : start + self.block].astype(np.int64))
        return {"input_ids": ids, "labels": ids}


def build_model(cfg: ModelConfig, tokenizer) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


class _Progress(TrainerCallback):
    """Step k of the planned steps, words seen, the latest loss, tokens/s, s/step and ETA
    (storyrl.training.progress: a bar in a terminal, a line every `every_s` seconds in a log file)."""

    def __init__(self, plan: Plan, run_id: str, every_s: float):
        self.plan, self.run_id, self.every_s = plan, run_id, every_s
        self.progress, self.latest = None, {}

    def on_train_begin(self, args, state, control, **kw):
        if state.is_world_process_zero:  # after a resume, state.global_step is the saved step
            self.progress = Progress(
                f"pretrain {self.run_id}",
                self.plan.total_steps,
                self.every_s,
                start=state.global_step,
            )

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:  # not the run's closing summary (train_runtime, ...)
            self.latest.update({k: logs.get(k) for k in ("loss", "tokens_per_s")})
            self._report(state)

    def on_step_end(self, args, state, control, **kw):
        if not control.should_log:  # else on_log reports the step, with its loss
            self._report(state)

    def _report(self, state):
        if self.progress is not None:
            self.progress.update(
                state.global_step,
                words=self.plan.words_at(state.global_step),
                loss=self.latest.get("loss"),
                tok_s=self.latest.get("tokens_per_s"),
            )

    def on_train_end(self, args, state, control, **kw):
        if self.progress is not None:
            self.progress.close()


class _Trainer(Trainer):
    """Trainer whose log rows also carry words and tokens seen and throughput."""

    plan: Plan
    _last = None

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:
            step, now = self.state.global_step, time.perf_counter()
            if self._last is not None and step > self._last[0]:
                logs["tokens_per_s"] = (
                    (step - self._last[0]) * self.plan.tokens_per_step / (now - self._last[1])
                )
            self._last = (step, now)
            logs["tokens_seen"] = step * self.plan.tokens_per_step
            logs["words_seen"] = self.plan.words_at(step)
        super().log(logs, *args, **kwargs)


def latest_state(work_dir: Path, clean: bool = True) -> Path | None:
    """The newest complete resume state; a save cut short (no trainer_state.json) is removed
    when `clean` (rank 0)."""
    best = None
    for d in sorted(work_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        # trainer_state.json is the last file rank 0 writes. Other ranks write their RNG state
        # alongside; one cut short only costs a warning and a fresh RNG at resume.
        if (d / "trainer_state.json").exists():
            best = d
        elif clean:
            log.warning("removing incomplete resume state %s", d)
            shutil.rmtree(d, ignore_errors=True)
    return best


def check_launch(visible_gpus: int, env: dict) -> int:
    """The number of processes this run is trained by; one process seeing several GPUs is refused."""
    if "WORLD_SIZE" in env:
        return int(env["WORLD_SIZE"])
    if visible_gpus > 1:
        raise DeviceError(
            f"pretrain: one process sees {visible_gpus} GPUs; the Trainer would use DataParallel "
            f"({visible_gpus}x the batch per step, {visible_gpus}x the data, milestones "
            f"mislabelled). Start one process per GPU with `torchrun --nproc_per_node "
            f"{visible_gpus}` (the `pretrain` rule does for resources gpu={visible_gpus}), or "
            "make one GPU visible (CUDA_VISIBLE_DEVICES)."
        )
    return 1


@holds_run_folder("work_dir")
def pretrain(
    tokens_bin,
    tokens_meta,
    tokenizer_dir,
    work_dir,
    run_id: str,
    model_cfg: ModelConfig,
    training: TrainingConfig,
    milestones: list[int],
    seed: int,
    callbacks=(),
    tracking: TrackingConfig | None = None,
) -> Path:
    """Train (or resume) the run in `work_dir`; return the folder of milestone checkpoints.
    `tracking`: where the Trainer reports, and how often progress is logged (default: the
    STORYRL_TRACKING environment variable, storyrl.training.tracking).

    SIGTERM (a SLURM time limit) is caught from the start, also while the data and a resume state
    load: training then stops after its next step, saved, and the process exits 143. A second
    process on the same `work_dir` is refused (storyrl.training.run_lock)."""
    sigterm = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: sigterm.set())
    try:
        tracking = tr.from_env() if tracking is None else tracking
        tr.require(tracking)
        quiet_library_bars()
        with tr.backend_environment(tracking, "pretrain", run_id):
            return _pretrain(
                tokens_bin,
                tokens_meta,
                tokenizer_dir,
                Path(work_dir),
                run_id,
                model_cfg,
                training,
                milestones,
                seed,
                callbacks,
                sigterm,
                tracking,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pretrain(
    tokens_bin,
    tokens_meta,
    tokenizer_dir,
    work_dir: Path,
    run_id,
    model_cfg,
    training,
    milestones,
    seed,
    callbacks,
    sigterm: threading.Event,
    tracking: TrackingConfig,
) -> Path:
    cuda = torch.cuda.is_available()
    world = check_launch(torch.cuda.device_count() if cuda else 0, os.environ)
    if training.threads:
        torch.set_num_threads(training.threads)

    tokens, meta = load_tokens(tokens_bin, tokens_meta)
    # The stream's identity too: re-tokenized data at the same path must not resume a state.
    settings = {
        "run_id": run_id,
        "model": model_cfg.model_dump(),
        "seed": seed,
        "training": training.model_dump(exclude=SPEED_ONLY),
        "milestones": milestones,
        "tokens": str(tokens_bin),
        "stream": {k: meta.get(k) for k in ("n_tokens", "tokens_per_word", "group_rows")},
    }
    block = model_cfg.n_positions
    dataset = Blocks(tokens, block, meta.get("group_tokens"))
    plan = plan_run(len(dataset), block, meta["tokens_per_word"], training, milestones)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    per_step = training.micro_batch_size * world
    if training.batch_size % per_step:
        raise ConfigError(
            f"pretrain.training.batch_size ({training.batch_size}) must be a "
            f"multiple of micro_batch_size x processes ({per_step})"
        )
    bf16 = (cuda and torch.cuda.is_bf16_supported()) if training.bf16 == "auto" else training.bf16
    compiled = cuda if training.compile == "auto" else training.compile
    args = TrainingArguments(
        output_dir=str(work_dir),
        max_steps=plan.total_steps,
        seed=seed,
        data_seed=seed,
        per_device_train_batch_size=training.micro_batch_size,
        gradient_accumulation_steps=training.batch_size // per_step,
        learning_rate=training.lr,
        lr_scheduler_type="linear",
        warmup_steps=math.ceil(training.warmup_ratio * plan.total_steps),
        weight_decay=training.weight_decay,
        adam_beta1=training.adam_beta1,
        adam_beta2=training.adam_beta2,
        adam_epsilon=training.adam_eps,
        max_grad_norm=training.grad_clip,
        bf16=bool(bf16),
        torch_compile=bool(compiled),
        optim="adamw_torch_fused" if training.fused_adamw else "adamw_torch",
        use_cpu=not cuda,
        ddp_backend="gloo" if world > 1 and not cuda else None,  # None: NCCL on GPUs
        logging_steps=training.log_every,
        save_strategy="steps",
        save_steps=training.save_every,
        save_total_limit=training.keep_states,
        dataloader_num_workers=0,
        # Our _Progress replaces the Trainer's bar, whose carriage returns fill a log file.
        disable_tqdm=True,
        **tr.hf_reporting(tracking, run_id),
    )
    if args.world_size != world:  # pragma: no cover - accelerate and torchrun disagree
        raise RuntimeError(
            f"WORLD_SIZE is {world} but the Trainer runs {args.world_size} processes"
        )
    main = args.process_index == 0
    if not main:
        logging.getLogger("storyrl").setLevel(logging.WARNING)
    # Rank 0 alone may move a stale run aside and drop a cut-short state; the others wait.
    with args.main_process_first(local=False, desc="run folder"):
        if main:
            check_run_config(work_dir, settings)
        resume = latest_state(work_dir, clean=main)

    torch.manual_seed(seed)
    model = build_model(model_cfg, tokenizer)
    if training.fused_gelu:
        fuse_gelu(model)  # no weights: the checkpoints still say gelu_new
    milestones_dir = work_dir / "milestones"
    marks = Milestones(plan, milestones_dir, run_id, sigterm, tokenizer_fingerprint(tokenizer))
    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=None if training.pad_batches else default_data_collator,
        callbacks=[marks, *callbacks],
    )
    trainer.plan = plan
    trainer.remove_callback(PrinterCallback)  # a dict per log step; _Progress says it in a line
    trainer.add_callback(_Progress(plan, run_id, tracking.progress_every_s))
    trainer.add_callback(
        tr.make_run_tags(
            tracking, trainer, run_id, make_metadata("pretrain_log", settings)["config_hash"]
        )
    )

    log.info(
        "run %s: %d steps x %d tokens (%.0f words) on %d process(es), %d milestones, "
        "resume from %s",
        run_id,
        plan.total_steps,
        plan.tokens_per_step,
        plan.words_at(plan.total_steps),
        world,
        len(milestones),
        resume or "scratch",
    )
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    finally:
        if main:
            write_log(trainer, work_dir / "log.parquet", run_id, settings)
    if marks.terminate:
        log.warning(
            "stopped by SIGTERM at step %d; state saved, start again to resume",
            trainer.state.global_step,
        )
        raise SystemExit(143)
    if world > 1:
        dist.barrier()  # rank 0 has exported the last milestone
    missing = [w for w in milestones if not (milestones_dir / checkpoint_name(w)).exists()]
    if missing:
        raise RuntimeError(f"run ended without milestones {[words_label(w) for w in missing]}")
    return milestones_dir
