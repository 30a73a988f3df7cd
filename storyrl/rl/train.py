"""The RL run loop: sample, score, update, log, checkpoint, until the word budget ends.

The scorer (storyrl.stories.scoring) judges each batch of stories; the teacher's replies are charged to
the ledger by their whitespace words. The algorithm (storyrl.rl.algorithms: ppo, grpo, rloo)
does the sampling and the updates; each step is recorded through the run's context
(storyrl.rl.run).

Output folder of a run:
    rollouts.parquet, steps.parquet   consolidated tables (schemas `rollouts`, `steps`)
    parts/{rollouts,steps}/NNNNNN.parquet   one file per step, written atomically as it ends
    state/state.pt                    resume state (`state_every`/`state_every_s`, and on SIGTERM)
    run_config.json                   what shapes the run (`run_settings`): a start under other
                                      settings is refused, or with `on_change="move"` (the
                                      workflow) the old run goes to stale-<time>/ and it starts afresh
    .storyrl.lock                     locked while a process writes the run (storyrl.training.run_lock)
    checkpoints/<words>/              HF causal-LM folder each `checkpoint_every` budget words
    final/                            the final policy (HF folder); summary.json
Every policy folder holds RL_INFO (storyrl.core.checkpoints): run id, step, budget words used at the save
(`rl_words`), the multiple it stands for (`label_words`, null for final/), the pretraining
checkpoint and its pretraining words when known, and the tokenizer's fingerprint. Every planned
checkpoint (`planned_checkpoints`) exists once a run has finished: one the run stopped short of
(`max_steps`, or a last step short of it) is a relative link to final/, not a copy (one warning
names them).
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
from pathlib import Path

from storyrl.config import ConfigError, RLConfig, TrackingConfig
from storyrl.config.rl import budget_problem
from storyrl.core.checkpoints import content_identity, pretrain_words, resolve_device
from storyrl.core.redact import portable_path
from storyrl.core.schemas import config_hash
from storyrl.rl.algorithms import algorithm
from storyrl.rl.run import RunContext, RunFiles, student_seed
from storyrl.stories.scoring import Scorer, teacher_identity
from storyrl.training import tracking as tr
from storyrl.training.progress import quiet_library_bars
from storyrl.training.run_config import check_run_config
from storyrl.training.run_lock import holds_run_folder

log = logging.getLogger(__name__)

OPERATIONAL = {"device", "state_every", "state_every_s"}
"""RL fields that change how a run is carried out, not what it computes: a resume may change
them. Every other field shapes the run (storyrl.training.run_config), `threads` as the count the run
computes with (`cpu_threads`)."""

KEEP = ("teacher_cache.sqlite", "teacher_cache.sqlite-wal", "teacher_cache.sqlite-shm")
"""Entries of a run folder that stay when a run made with other settings is moved aside: the
teacher's score cache is keyed by the teacher's identity and the story, so it stays valid."""


ADDED = {"rl.threads": "the CPU threads it computes with, which change its results"}
"""Settings that records of older runs lack (storyrl.training.run_config: taken as now, with a warning)."""


def cpu_threads(cfg: RLConfig, device) -> int | None:
    """The CPU threads torch computes with on a CPU device: `rl.threads`, else torch's default
    (OMP_NUM_THREADS, else the cores). Reductions split over threads add in another order, so 1
    and 2 threads give other steps, rollouts and weights. None on a GPU, whose kernels do not
    depend on it."""
    import torch

    return (cfg.threads or torch.get_num_threads()) if device.type == "cpu" else None


def run_settings(
    cfg: RLConfig, checkpoint, scorer: Scorer, run_id: str, threads: int | None = None
) -> dict:
    """What shapes an RL run: a resume must find the same (storyrl.training.run_config). `threads`:
    `cpu_threads`."""
    from storyrl.stories.scoring import TeacherScorer

    if isinstance(scorer, TeacherScorer):
        # Not the server's address or the template's path: the same teacher can move.
        ident = teacher_identity(scorer)
        teacher = {k: v for k, v in ident.items() if k not in ("server", "template")}
        reward = scorer.reward_cfg.model_dump(mode="json")
    else:
        teacher, reward = f"{type(scorer).__module__}.{type(scorer).__qualname__}", None
    return {
        "run_id": run_id,
        "rl": {**cfg.model_dump(mode="json", exclude=OPERATIONAL), "threads": threads},
        "teacher": teacher,
        "reward": reward,
        "checkpoint": content_identity(checkpoint),
    }


def setting_hash(cfg: RLConfig, teacher: dict | None) -> str:
    """What the seeds of one setting share: the RL section without its seed and the settings
    of where and how often it saves, and the teacher without its sampling seed and address.
    The analysis refuses to pool as seeds runs whose hashes differ (storyrl.analysis.checks)."""
    rl = cfg.model_dump(
        mode="json", exclude={"seed", "device", "threads", "state_every", "state_every_s"}
    )
    if teacher is not None:
        # Not the server's address either: an RL pack's teacher gets a new port in every job.
        teacher = {k: v for k, v in teacher.items() if k != "server"}
        teacher["sampling"] = {**(teacher.get("sampling") or {}), "seed": None}
    return config_hash({"rl": rl, "teacher": teacher})


@holds_run_folder("output")
def train(
    checkpoint,
    output,
    cfg: RLConfig,
    scorer: Scorer,
    run_id: str | None = None,
    pretrain_words_seen: int | None = None,
    corpus_words: int | None = None,
    tracking: TrackingConfig | None = None,
    on_change: str = "refuse",
) -> dict:
    """Run RL from `checkpoint` into `output` until the budget (or `max_steps`) ends; resumes.
    Returns the summary (also written to summary.json). `tracking`: where metrics go and how
    often progress is logged (default: the STORYRL_TRACKING environment variable).
    `on_change`: what to do with a folder that holds a run made with other settings, `refuse`
    or `move` it aside (storyrl.training.run_config). A second process on the same folder is refused
    (storyrl.training.run_lock)."""
    output = Path(output)
    if problem := budget_problem(cfg):
        raise ConfigError(f"{output}: {problem}")
    run_id = run_id or output.name
    tracking = tr.from_env() if tracking is None else tracking
    tr.require(tracking)
    quiet_library_bars()
    device = resolve_device(cfg.device, cfg.threads)
    settings = run_settings(cfg, checkpoint, scorer, run_id, cpu_threads(cfg, device))
    # Before anything reads the folder: its state, parts and summary belong to these settings.
    check_run_config(output, settings, on_change, keep=KEEP, added=ADDED)
    meta = {
        "run_id": run_id,
        "checkpoint": portable_path(checkpoint),
        "checkpoint_sha256": settings["checkpoint"]["sha256"],
        "seed": cfg.seed,
        "sampling_seed": student_seed(cfg),
        "algorithm": cfg.algorithm,
        "config_hash": config_hash(settings["rl"]),
        "teacher": teacher_identity(scorer),
        "budget": cfg.budget,
        "setting_hash": setting_hash(cfg, teacher_identity(scorer)),
    }
    # RL_INFO's pretrain_words: the checkpoint's milestone, else what the caller says it saw.
    words = pretrain_words(checkpoint)
    ctx = RunContext(
        run_id=run_id,
        checkpoint=str(checkpoint),
        output=output,
        cfg=cfg,
        scorer=scorer,
        device=device,
        files=RunFiles(output, meta),
        pretrain_words=words if words is not None else pretrain_words_seen,
        pretrain_words_seen=pretrain_words_seen,
        corpus_words=corpus_words,
        tracking=tracking,
    )
    if ctx.finished:
        log.info("%s: already finished", output)
        return json.loads((output / "summary.json").read_text())
    lm, tokenizer = algorithm(cfg.algorithm)(ctx).run()
    return ctx.finish(lm, tokenizer)
