"""The RL stage's config section: sampling, the algorithm and its hyper-parameters, the budget.

Defaults are the paper's values (TRL 0.9.4's `PPOConfig` as the authors set it) unless a field
says otherwise; `config/paper.yaml` repeats them so they are visible in one place.
"""

from typing import Literal, NamedTuple

from pydantic import Field, ValidationError, model_validator

from storyrl.config.base import Name, Section, Words, deep_merge, error_lines
from storyrl.core.units import count_words, words_label

PAPER_PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


class SamplingConfig(Section):
    """How the student writes a story (HF `generate`, the whole batch at once)."""

    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    """0 turns top-k off (paper: 0)."""
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(90, ge=1)
    """Also the length bonus's denominator (paper: 90)."""
    train_mode: bool = True
    """TRL 0.9.4 quirk the paper inherited: its update leaves the policy in train mode, so from
    the second step on the student samples with the checkpoint's dropout (its forward passes for
    the loss run in eval mode). False samples in eval mode always."""
    chunk_size: int | None = Field(None, ge=1)
    """Prompts per `generate` call; None samples the whole batch at once (TRL 0.9.4: 4)."""
    compile: Literal["auto", True, False] = "auto"
    """Decode with a static KV cache and a compiled forward (transformers'
    `cache_implementation="static"` with `torch.compile`, CUDA graphs on a GPU) instead of a
    growing cache and one eager forward per token. The same distribution: in eval mode the same
    tokens for a seed up to float rounding; in train mode attention dropout draws its mask over
    the cache's full length, so the draws differ (masked positions have probability 0).
    The first call per batch shape compiles (tens of seconds). `auto`: on CUDA only, falling
    back to the dynamic cache with a warning if compiling fails; `true`: also on CPU (slow to
    compile; no fallback); `false`: the dynamic cache (as TRL 0.9.4 sampled)."""
    keep_special_tokens: bool = False
    """Decode the continuation with its special tokens, as the authors' code did
    (`tokenizer.decode(r)`): a story that sampled EOS ends in `</s>`, the teacher is shown it,
    and the length bonus and generated words count it (an EOS-only story is one word).
    Paper: true; false (ours) drops them. PPO and story evaluation; TRL's GRPO/RLOO decode
    their own completions without them."""


class PPOConfig(Section):
    """PPO exactly as TRL 0.9.4's step-wise `PPOTrainer` ran it (paper values)."""

    lr: float = Field(1e-6, gt=0)
    """Adam (betas 0.9/0.999, eps 1e-8, no weight decay), constant: no schedule."""
    mini_batch_size: int | None = Field(None, ge=1)
    """Stories per minibatch; None = the whole batch (paper: 360 = one minibatch)."""
    micro_batch: int | None = Field(None, ge=1)
    """Stories per forward/backward pass inside a minibatch (gradient accumulation); None = the
    whole minibatch in one pass (paper). The update is the same either way (advantages, loss
    means and the ratio check are over the whole minibatch; each pass's loss is scaled by its
    share of the minibatch's response tokens): only the activation memory shrinks, about in
    proportion (storyrl.rl.memory)."""
    ppo_epochs: int = Field(4, ge=1)
    init_kl_coef: float = Field(0.2, ge=0)
    adaptive_kl: bool = True
    """Adaptive KL controller (Ziegler et al. 2019); False keeps the coefficient fixed."""
    kl_target: float = Field(6.0, gt=0)
    kl_horizon: float = Field(10_000, gt=0)
    gamma: float = Field(1.0, ge=0, le=1)
    lam: float = Field(0.95, ge=0, le=1)
    cliprange: float = Field(0.2, gt=0)
    cliprange_value: float = Field(0.2, gt=0)
    vf_coef: float = Field(0.1, ge=0)
    ratio_threshold: float = Field(10.0, gt=0)
    """A minibatch whose mean probability ratio exceeds this has its loss zeroed (TRL still
    calls `optimizer.step()`, so Adam's momentum moves the weights; we do the same)."""
    max_grad_norm: float | None = Field(None, gt=0)
    """Gradient clipping; None = none (paper)."""
    whiten_rewards: bool = False
    """Whiten the per-token rewards before GAE (paper: no)."""
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    """Number format of the update's forward and backward passes (not the paper's by default on
    a GPU). `fp32`: all fp32, as TRL 0.9.4 ran it (the paper). `bf16`: the GPT-2 trunk of the
    policy and of the reference runs under bf16 autocast; weights, gradients and Adam's state
    stay fp32, and the LM head, log-softmax, KL, values and losses stay fp32 (with TF32 matmuls
    on CUDA). `auto`: bf16 on a CUDA GPU with native bf16 (about 3.4x faster on an H200 at the
    paper's shape, weight updates within 2.5%), fp32 elsewhere."""


class GroupConfig(Section):
    """Settings for TRL's GRPO/RLOO trainers (not used by PPO)."""

    num_generations: int = Field(8, ge=2)
    """Stories per prompt in a group; the batch must be a multiple of it."""
    beta: float = Field(0.0, ge=0)
    """KL coefficient to the reference model (TRL's default is 0 for GRPO)."""
    num_iterations: int = Field(1, ge=1)
    """Updates per generated batch (GRPO's mu)."""
    epsilon: float = Field(0.2, gt=0)
    lr: float = Field(1e-6, gt=0)


class RLConfig(Section):
    """One RL run from a pretraining checkpoint: what is sampled, how it is learned, how long."""

    algorithm: Literal["ppo", "grpo", "rloo"] = "ppo"
    """`ppo`: ours, TRL 0.9.4 semantics (paper). `grpo`, `rloo`: TRL's maintained trainers."""
    prompts: list[str] = [PAPER_PROMPT]
    """Story prompts; the batch cycles through them (paper: one, 16 words)."""
    batch_size: int = Field(360, ge=2)
    """Stories per step (paper: 360)."""
    sampling: SamplingConfig = SamplingConfig()
    ppo: PPOConfig = PPOConfig()
    group: GroupConfig = GroupConfig()
    budget: Words = 1_000_000
    """Interaction budget in words: the first batch's prompt words (charged once, with the first
    step) plus every teacher reply's words; the run stops before a step would pass it (paper: 1M
    -> 920 steps, storyrl.rl.ledger)."""
    checkpoint_every: Words = 100_000
    """Save the policy as an HF folder each time the budget crosses a multiple of this."""
    state_every: int | None = Field(None, ge=1)
    """Steps between resume states; None: by time only (`state_every_s`)."""
    state_every_s: float | None = Field(600, gt=0)
    """Seconds between resume states, checked after each step; None: by steps only. A state
    holds the policy, value head and Adam moments (~1.2 GB at paper scale), so one per step
    would write ~1 TB a run; at ~6.5 s a step, 600 s is one state per ~90 steps (~10 a run) and a
    killed run redoes at most ~10 minutes, to the same results. SIGTERM (a job's time limit)
    always saves the state after the step in flight, then the run exits with status 143."""
    max_steps: int | None = Field(None, ge=1)
    """Optional cap on steps (for tests and demos); None = run until the budget ends."""
    max_prompts: int | None = Field(None, ge=1)
    """Size of the prompt set, as the authors built it: at most this many stories are asked for,
    in whole batches (`max_prompts // batch_size`, the rest dropped as TRL's data loader drops
    it), skipped batches included; the run stops there even with budget left. None: no cap, the
    budget alone ends the run (ours). Paper: 344,827 (their datasetbuilder.py: int(budget / 2.9)),
    957 batches of 360; it binds only if replies average under 2.886 words."""
    on_step_error: Literal["stop", "skip"] = "stop"
    """What an error inside a step (sampling, scoring, the update) does. `stop` (ours): the run
    stops, its last state kept. `skip` (the authors' ppotrainer.py): the batch is dropped
    uncharged, training goes on, and `skipped_batches` in steps.parquet and the summary counts
    it; needs `max_prompts`, so that a run whose every batch fails still ends. PPO only (TRL's
    GRPO/RLOO trainers stop on an error)."""
    seed: int = 42
    """The run's seed: the value head's initialisation, the teacher's sampling seed, the run id,
    and (unless `sampling_seed` is set) the student's RNG (paper: 42, 43, 44)."""
    sampling_seed: int | None = None
    """Seed of the student's RNG (its sampling, dropout and minibatch order), set once the value
    head is drawn. None: `seed`, so each seed of the run table samples its own stories (ours).
    An integer gives every run that same stream, as in the paper: TRL 0.9.4's
    `PPOTrainer.__init__` calls `set_seed(config.seed)` with PPOConfig's default seed 0, so the
    authors' 900M runs with seeds 42, 43 and 44 shared one sampling stream and differed only in
    the value head and the teacher's seed (paper: 0). TRL's GRPO/RLOO trainers get it as `seed`."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads; None leaves torch's default (OMP_NUM_THREADS, else the cores). On a CPU
    the count changes the results, so a run records the count it computes with and a resume
    under another one is refused."""
    device: str = "auto"
    """`auto`: CUDA when present, else CPU."""

    @model_validator(mode="after")
    def _check(self):
        if self.state_every is None and self.state_every_s is None:
            raise ValueError(
                "state_every, state_every_s: set at least one (when to write resume states)"
            )
        if not self.prompts or any(not p.strip() for p in self.prompts):
            raise ValueError("prompts: at least one non-empty prompt is needed")
        mb = self.ppo.mini_batch_size
        if mb is not None and self.batch_size % mb:
            raise ValueError(
                f"ppo.mini_batch_size ({mb}) must divide batch_size ({self.batch_size})"
            )
        if self.on_step_error == "skip" and self.max_prompts is None:
            raise ValueError(
                "on_step_error: skip needs max_prompts (a run whose every batch fails would "
                "never end)"
            )
        if self.max_prompts is not None and self.max_prompts < self.batch_size:
            raise ValueError(
                f"max_prompts ({self.max_prompts}) holds no whole batch of "
                f"batch_size ({self.batch_size})"
            )
        if self.algorithm != "ppo" and self.batch_size % self.group.num_generations:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of "
                f"group.num_generations ({self.group.num_generations})"
            )
        return self


REPLY_WORDS = 3
"""Budget words of one teacher reply in the form the rubric asks for (three numbers)."""


def budget_problem(cfg: RLConfig) -> str | None:
    """Why the budget cannot pay for a single step, or None. A run with no step would publish
    its untouched starting checkpoint as an RL policy. The first step costs the first batch's
    prompt words plus its teacher replies (storyrl.rl.ledger)."""
    prompts = sum(count_words(cfg.prompts[i % len(cfg.prompts)]) for i in range(cfg.batch_size))
    replies = REPLY_WORDS * cfg.batch_size
    if cfg.budget >= prompts + replies:
        return None
    return (
        f"rl.budget: {cfg.budget} words do not pay for one step: the first batch's prompts "
        f"take {prompts} words ({cfg.batch_size} stories) and its teacher replies {replies} "
        f"({REPLY_WORDS} words each), {prompts + replies} in all"
    )


def max_batches(cfg: RLConfig) -> int | None:
    """Batches the prompt set holds (`max_prompts`), or None: no cap."""
    return None if cfg.max_prompts is None else cfg.max_prompts // cfg.batch_size


def state_due(cfg: RLConfig, steps_since: int, seconds_since: float) -> bool:
    """Write a resume state now, `steps_since` steps and `seconds_since` seconds after the last?"""
    return (cfg.state_every is not None and steps_since >= cfg.state_every) or (
        cfg.state_every_s is not None and seconds_since >= cfg.state_every_s
    )


def planned_checkpoints(cfg: RLConfig) -> list[int]:
    """Budget words of the checkpoints a run writes: every multiple of `checkpoint_every`
    strictly below the budget. The workflow declares `checkpoints/<words_label(w)>` for each, so a
    run that stops before reaching one (max_steps, or a last step short of it) links that label
    to its final policy."""
    k = cfg.checkpoint_every
    return list(range(k, cfg.budget, k)) if k > 0 else []


class RunSpec(Section):
    """A row of the run table: RL from one pretraining checkpoint, for each seed, as a variant."""

    checkpoint: Words
    """Pretraining words of the starting checkpoint (e.g. `90M`): one of the pretraining
    milestones."""
    pretrain_run: str | None = None
    """Which pretraining run's checkpoint; None = the only one."""
    seeds: list[int] = Field([42], min_length=1)
    variant: Name = "base"
    """Name of the variant; it goes into the run id and the results path."""
    overrides: dict = {}
    """Settings this variant changes, nested as in YAML: keys of `rl` directly, or under `rl`,
    `teacher` and `reward` keys (e.g. `{reward: {length_coef: 0}}` for a reward ablation)."""


OVERRIDE_SECTIONS = ("rl", "teacher", "reward")


class RLRun(NamedTuple):
    checkpoint: int
    """Pretraining words of the starting checkpoint."""
    rl: RLConfig
    teacher: dict
    """The teacher section with the variant's overrides (validated by the caller)."""
    reward: dict
    pretrain_run: str | None


def expand_runs(
    base: RLConfig, runs: list[RunSpec], teacher: dict | None = None, reward: dict | None = None
) -> dict[str, RLRun]:
    """Run id `<checkpoint>-seed<S>-<variant>` -> the run, with the variant's overrides merged
    key by key into `base` (and into the `teacher`/`reward` sections) and the seed set."""
    out = {}
    for i, spec in enumerate(runs):
        ov = spec.overrides
        sectioned = bool(ov) and set(ov) <= set(OVERRIDE_SECTIONS)
        rl_overrides = ov.get("rl", {}) if sectioned else ov
        for seed in spec.seeds:
            run_id = f"{words_label(spec.checkpoint)}-seed{seed}-{spec.variant}"
            if run_id in out:
                raise ValueError(f"runs[{i}]: run '{run_id}' is declared twice")
            try:
                cfg = RLConfig.model_validate(
                    deep_merge(base.model_dump(), {**rl_overrides, "seed": seed})
                )
            except ValidationError as err:
                raise ValueError(
                    f"runs[{i}] ({run_id}): overrides: " + "; ".join(error_lines(err, "rl"))
                ) from None
            out[run_id] = RLRun(
                spec.checkpoint,
                cfg,
                deep_merge(teacher or {}, ov.get("teacher", {}) if sectioned else {}),
                deep_merge(reward or {}, ov.get("reward", {}) if sectioned else {}),
                spec.pretrain_run,
            )
    return out
