"""The analysis section: how tables and figures summarise the Parquet results."""

from pydantic import Field

from storyrl.config import Section


class AnalysisConfig(Section):
    """Settings of every table and figure (paper values as defaults)."""

    window_steps: int = Field(10, ge=1)
    """Steps averaged for the score before RL (the first ones) and after RL (the last ones)
    (paper: 10 batches)."""
    bootstrap: int = Field(1000, ge=10)
    """Bootstrap resamples for every interval."""
    ci: float = Field(0.95, gt=0, lt=1)
    """Coverage of the bootstrap intervals (percentile method)."""
    seed: int = 0
    """Seed of the bootstrap resampling."""
    smooth_steps: int = Field(10, ge=1)
    """Rolling-mean window (steps) of the RL dynamics curves; 1 draws the raw per-step values."""
    share_bins: int = Field(20, ge=2)
    """Bins of interaction words in the stacked score-share figure."""
    final_rl_band: float = Field(0.05, ge=0, lt=1)
    """When a model is not named explicitly, the BabyLM table takes as 'final RL' the models
    whose RL words are within this share of the largest RL words from that checkpoint (runs of
    the same budget end a few words apart; checkpoints are at least 10% below)."""
    babylm_pretrain_words: int | None = None
    """Pretraining words of the BabyLM table's models; None: the largest that has full-set
    scores (paper: 900M)."""
    baselines: str | None = None
    """YAML or CSV of baseline columns for the BabyLM table ({column: {task: value}}; paper
    config: config/babylm_baselines.yaml, the paper's own baselines)."""
