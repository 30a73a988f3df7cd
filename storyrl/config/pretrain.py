"""Config sections of pretraining: the model's shape, the training run, the compute it may use."""

from typing import Literal

from pydantic import Field, model_validator

from storyrl.config.base import Name, Section, Words


# --------------------------------------------------------------------------- model
class ModelConfig(Section):
    """A GPT-2 built from a config with random weights."""

    n_layer: int = Field(12, ge=1)
    n_head: int = Field(12, ge=1)
    n_embd: int = Field(768, ge=8)
    n_positions: int = Field(512, ge=8)
    """Context length; pretraining blocks have this many tokens."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Used for residual, embedding and attention dropout alike."""

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


# --------------------------------------------------------------------------- pretraining
class TrainingConfig(Section):
    """Pretraining hyper-parameters (paper values are the defaults)."""

    lr: float = Field(5e-4, gt=0)
    warmup_ratio: float = Field(0.01, ge=0, lt=1)
    """Linear warm-up as a share of the whole run, then linear decay to 0 at the run's end."""
    weight_decay: float = Field(0.0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    grad_clip: float = Field(1.0, gt=0)
    batch_size: int = Field(256, ge=1)
    """Sequences per optimizer step, over all devices (the effective batch)."""
    micro_batch_size: int = Field(32, ge=1)
    """Sequences per device per forward pass; gradient accumulation makes up the rest."""
    epochs: float = Field(11, gt=0)
    """Length of the planned run; the learning-rate schedule spans all of it (paper: 11 epochs,
    ≈990M words, so that the 900M milestone is reached before the learning rate is 0)."""
    bf16: Literal["auto", True, False] = "auto"
    """`auto`: bf16 mixed precision on a GPU that supports it, fp32 on CPU."""
    log_every: int = Field(10, ge=1)
    """Steps between rows of the pretraining log."""
    save_every: int = Field(500, ge=1)
    """Steps between resume states (milestone checkpoints are saved in addition)."""
    keep_states: int = Field(2, ge=1)
    """Resume states kept on disk (the newest ones)."""
    threads: int | None = None
    """torch CPU threads; None leaves torch's default."""
    compile: Literal["auto", True, False] = "auto"
    """`torch.compile` the model for training (the Trainer's `torch_compile`, inductor):
    GPT-2's elementwise passes (gelu_new, layer norms, dropout, residuals, the loss's fp32
    log-softmax) become fused kernels. The same computation up to float rounding, except that
    dropout masks come from inductor's RNG (other draws of the same distribution). The first
    steps compile (about a minute, again after a resume). `auto`: on CUDA only."""
    fused_adamw: bool = True
    """AdamW as one fused kernel over all parameters (`adamw_torch_fused`, CPU and CUDA; the
    Trainer's own default with torch >= 2.8); false: torch's multi-tensor loop (`adamw_torch`).
    The same update up to float rounding."""
    pad_batches: bool = False
    """True: the Trainer's default collator for a tokenizer (pads, and adds an all-ones
    attention mask: ~30 ms of Python per micro-batch of 64, and attention runs with a mask
    instead of the causal kernel). False: stack the blocks, which all have the full length,
    with no mask; the same computation."""
    fused_gelu: bool = True
    """Train with torch's one-kernel tanh GELU in place of GPT-2's `gelu_new` (eight
    elementwise passes in Python): the same formula up to float rounding. The checkpoints still
    say `gelu_new`, so they load and evaluate exactly as before. Matters when not compiling."""


class ComputeConfig(Section):
    """What the GPU rules (pretrain, rl, story_eval, zero_shot) may run on."""

    allow_cpu: bool = True
    """False (paper): a GPU job that sees no CUDA device stops at once and says why (device
    count, torch's CUDA build, driver) instead of training on CPU until its time limit."""


class PretrainRun(Section):
    """One pretraining run: a corpus slice, a model shape and a seed."""

    corpus: str
    model: str
    seed: int = 42


class PretrainJob(Section):
    """What the pretraining rule passes to `storyrl pretrain`: one run, fully resolved."""

    run_id: str
    model: ModelConfig
    training: TrainingConfig
    milestones: list[Words]
    seed: int


class PretrainConfig(Section):
    training: TrainingConfig = TrainingConfig()
    milestones: list[Words]
    """Words seen at which a checkpoint is kept (`1M`, `20M`, ...); they name the checkpoints."""
    runs: dict[Name, PretrainRun]

    @model_validator(mode="after")
    def _milestones_increase(self):
        if not self.milestones:
            raise ValueError("milestones: at least one is needed")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError("milestones must be strictly increasing")
        if self.milestones[0] <= 0:
            raise ValueError("milestones must be > 0")
        return self
