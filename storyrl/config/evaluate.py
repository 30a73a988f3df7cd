"""Config sections of evaluation: teacher-scored stories, BabyLM zero-shot, and the hand-off to
the official BabyLM pipeline (GLUE, reading, AoA). The code that runs them is in
storyrl/evaluate/; the BabyLM facts they check against are in storyrl/core/babylm_spec.py."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from storyrl.config.base import Section
from storyrl.core.babylm_spec import GLUE_TASKS, ZERO_SHOT_TASKS


class StoryEvalConfig(Section):
    """How many stories a checkpoint writes for its story evaluation, and where it runs. Prompts
    and sampling settings come from the `rl` section, so the student writes as it does in RL."""

    n_stories: int = Field(1000, ge=1)
    """Stories per checkpoint (our choice; the paper has no such evaluation); they cycle
    through the RL prompts in order."""
    batch_size: int = Field(100, ge=1)
    """Stories per `generate` call (and per teacher call)."""
    seed: int = 42
    """Seeds the student's sampling (and the teacher's, through the CLI)."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads; None leaves torch's default."""
    device: str = "auto"
    """`auto`: CUDA when present, else CPU."""


class ZeroShotConfig(Section):
    """BabyLM zero-shot evaluation of a checkpoint (BLiMP, supplement, EWoK, entity tracking,
    COMPS, WUG)."""

    data_path: str | None = None
    """The official `evaluation_data/` folder (holding `full_eval/` and `fast_eval/`); None: the
    demo evaluation sets that `storyrl.data.demo_eval` writes."""
    variant: Literal["full", "fast"] = "fast"
    """Which sets to score (paper: full on 900M-pre and the final policies, fast on every
    checkpoint)."""
    tasks: list[str] = list(ZERO_SHOT_TASKS)
    """Tasks to score; a task whose folder is missing is skipped with a warning."""
    fast_tasks: list[str] | None = None
    """Tasks of the fast sets (scored on every checkpoint, drawn in the fast-set figures);
    None: `tasks`. Paper: the authors' eval_zero_shot_fast.sh, which scores no COMPS (their full
    sets do)."""
    batch_size: int = Field(64, ge=1)
    """Sequences per forward pass (the official pipeline: 64 items per candidate)."""
    device: str = "auto"
    """`auto`: CUDA when available, else CPU."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """`auto`: bf16 autocast on GPU (close calls re-checked in fp32), fp32 on CPU. `float32`:
    fp32 everywhere, as the authors scored (paper config)."""
    recheck_margin: float = Field(1.0, ge=0)
    """With bf16: items whose best two candidates are closer than this (nats) are rescored in
    fp32, so that the choices are those of an fp32 run."""

    @field_validator("tasks", "fast_tasks")
    @classmethod
    def _known_tasks(cls, v):
        unknown = [t for t in v or [] if t not in ZERO_SHOT_TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown} (known: {', '.join(ZERO_SHOT_TASKS)})")
        return v

    def tasks_for(self, variant: str) -> list[str]:
        """The tasks a variant (`full`, `fast`) scores."""
        return self.tasks if variant == "full" or self.fast_tasks is None else self.fast_tasks


class OfficialConfig(Section):
    """GLUE, reading and AoA through a checkout of the official BabyLM pipeline."""

    path: str | None = None
    """The checkout (the folder holding `evaluation_pipeline/`); None: no hand-off."""
    python: str = "python"
    """Interpreter of an environment with the pipeline's requirements.txt."""
    data_path: str | None = None
    """Its `evaluation_data/` folder; None: `<path>/evaluation_data`."""
    models: Literal["full_set", "all"] = "full_set"
    """Reading on the full-set models (paper: 900M-pre and the final policies) or on every
    checkpoint."""
    glue: list[str] = list(GLUE_TASKS)
    """GLUE tasks to fine-tune on ([] for none); hyperparameters below as eval_finetuning.sh."""
    glue_models: Literal["table", "full_set", "all"] | list[str] = "table"
    """Models fine-tuned on GLUE (a model and task is one job of hours): `table`, the models of
    the paper's BabyLM table: the largest RL starting checkpoint and the final policies from it
    of seed `analysis.paper_seed` (paper: 900M-pre and 900M-RL seed 42; all seeds if none has
    it); `full_set`, every full-set model (adds the other final policies); `all`, every
    checkpoint; or a list of model ids (as in results/eval/<model id>.parquet), e.g.
    [paper-pre-900M, 900M-seed42-base-rl-final, 900M-seed43-base-rl-final]."""
    learning_rate: float = Field(3e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    big_batch_size: int = Field(16, ge=1)
    """Batch size of boolq and multirc."""
    epochs: int = Field(10, ge=1)
    wsc_epochs: int = Field(30, ge=1)
    seed: int = 42
    sequence_length: int = Field(512, ge=8)
    take_final: bool = False
    """Classify from the last token (`--take_final`), as the authors ran GLUE (their
    eval/eval_finetuning.sh passes it to all 7 tasks; paper config: true). The pipeline's own
    eval_finetuning.sh does not, so the classifier reads token 0, which in a causal model has
    seen only itself. Which token is "last" is the fine-tuning pipeline's choice: see
    `finetune_path`."""
    finetune_path: str | None = None
    """A copy of the pipeline that runs GLUE fine-tuning only (the folder holding
    `evaluation_pipeline/finetune/`); None: `path`. The paper: the authors' copy, the `eval/`
    folder of malihamza/babylm-interactive-learning (commit 4bfd376), whose classifier with
    `--take_final` reads the last non-pad token of each input (`attention_mask.sum(1) - 1`);
    the official one reads position -1, a pad on right-padded inputs, and so gives other GLUE
    numbers. Their copy has no AoA module: reading and AoA always run in `path`. Checked only
    while `path` is set (the hand-off is on)."""
    reading: bool = True
    """Eye-tracking and self-paced reading scores."""
    aoa: bool = False
    """Word surprisal over the pretraining milestones that the track names (chck_<N>M), and the
    pipeline's AoA score of the BabyLM table's pretraining checkpoint and of the final policies
    started from it (`storyrl.evaluate.aoa_score`)."""
    aoa_track: Literal["strict-small", "non-strict-small"] = "strict-small"
    """strict-small: 1-9M, 10-100M; non-strict-small adds 200M-1000M (the authors' setting, the
    default of their eval_aoa.sh). The RL policy takes the revision after its checkpoint
    (900M -> chck_1000M), so its AoA score needs a track that goes past that checkpoint."""
    aoa_min_context: int = Field(20, ge=0)
    """Words with fewer contexts than this are left out of AoA (`--min_context`). 20 is the
    value both eval_aoa.sh scripts set; neither passes it on, so the pipeline's run.py default,
    0, is what the authors ran (paper config: 0)."""

    @field_validator("glue")
    @classmethod
    def _known(cls, v):
        unknown = [t for t in v if t not in GLUE_TASKS]
        if unknown:
            raise ValueError(f"unknown GLUE task(s) {unknown} (known: {', '.join(GLUE_TASKS)})")
        return v

    @field_validator("path")
    @classmethod
    def _checkout(cls, v):
        if v is not None and not (Path(v) / "evaluation_pipeline").is_dir():
            raise ValueError(
                f"{v} is not a checkout of babylm/evaluation-pipeline-2025 (no "
                "evaluation_pipeline/ folder in it)"
            )
        return v

    @model_validator(mode="after")
    def _finetune_copy(self):
        v = self.finetune_path
        if self.path is not None and v is not None:
            if not (Path(v) / "evaluation_pipeline" / "finetune").is_dir():
                raise ValueError(
                    f"finetune_path: {v} is not a copy of the BabyLM pipeline (no "
                    "evaluation_pipeline/finetune/ folder in it); for the paper, the eval/ folder "
                    "of malihamza/babylm-interactive-learning"
                )
        return self

    def glue_checkout(self) -> str:
        """Where GLUE fine-tuning runs."""
        return self.finetune_path or self.path

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def data(self) -> Path:
        return Path(self.data_path or Path(self.path) / "evaluation_data").resolve()
