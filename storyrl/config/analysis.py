"""The analysis section: how tables and figures summarise the Parquet results."""

from typing import Literal

from pydantic import Field

from storyrl.config.base import Section


class AnalysisConfig(Section):
    """Settings of every table and figure (paper values as defaults)."""

    window_steps: int = Field(10, ge=1)
    """Steps averaged for the score before RL (the first ones) and after RL (the last ones)
    (paper: 10 batches)."""
    bootstrap: int = Field(1000, ge=10)
    """Bootstrap resamples for every interval."""
    ci: float = Field(0.95, gt=0, lt=1)
    """Coverage of the bootstrap intervals (percentile method)."""
    seed: int = Field(0, ge=0)
    """Seed of the bootstrap resampling; each run (and checkpoint) gets its own stream from this
    seed and its id, so intervals do not depend on the order of the input files."""
    paper_seed: int | None = 42
    """RL seed of the run that fills the columns the paper reports (before/after score, the
    BabyLM RL column; paper: 42, its notebook keeps seed 42 only); the mean and sd over all
    seeds are extra columns. None: those columns are the mean over seeds."""
    score_statistic: Literal["training", "authors_regex"] = "training"
    r"""The teacher score (0-9) of the before/after table and of the `paper` equivalence
    method. `training` (ours): the score each run trained on x 9 (an unparsed reply counts
    4.5), per story where the rollouts are given, else per step. `authors_regex` (the authors'
    notebook): each logged teacher reply re-parsed with `\b(\d)\b[ ,]+(\d)\b[ ,]+(\d)\b`
    (first match, no clamping), replies without a match dropped, the rest of a run re-bucketed
    in order into groups of its batch size; before/after = the mean over the first/last
    `window_steps` groups of a group's mean per-story sum. Needs every run's rollouts."""
    stories_per_group: int = Field(2, ge=1)
    """Stories the stories table shows per RL run from each of its groups: the first
    `stories_share` of training, the last, and the highest teacher scores."""
    stories_share: float = Field(0.1, gt=0, le=0.5)
    """Share of a run's steps that make its 'first' and 'last' groups of stories (the paper's
    appendix: the first and last tenth)."""
    length_unit: Literal["words", "tokens"] = "words"
    """Story length in figures (and the entropy per unit): whitespace words, or the student's
    tokens as the paper's figures count them."""
    x_axis: Literal["words", "interactions"] = "words"
    """x axis of the RL dynamics and score shares: interaction words (the RL budget), or
    interactions = stories (the paper's figures)."""
    smoothing: Literal["rolling", "gaussian"] = "rolling"
    """Per-step curves (RL dynamics, score shares): a rolling mean over `smooth_steps`, or the
    paper's Gaussian filter with sigma `smooth_sigma` steps (scipy gaussian_filter1d,
    mode 'nearest'; the score-against-length panel: `score_length_mode`)."""
    smooth_steps: int = Field(10, ge=1)
    """Rolling-mean window (steps) of the RL dynamics curves; 1 draws the raw per-step values."""
    smooth_sigma: float = Field(30.0, gt=0)
    """Sigma (steps) of the Gaussian smoothing (paper: 30)."""
    score_length_mode: Literal["nearest", "mirror"] = "nearest"
    """How the Gaussian smoothing continues past a run's first and last step in the panel of
    teacher score against story length (rl_dynamics, last panel): `nearest` repeats the end
    values, as every other curve does; `mirror` reflects the series about its end points
    (scipy's modes). Paper: mirror, the one panel of their notebook smoothed so."""
    share_bins: int = Field(20, ge=2)
    """Bins of interaction words in the stacked score-share figure (rolling smoothing only;
    the Gaussian smooths the per-step shares instead)."""
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


class ShareConfig(Section):
    """The results as a Hugging Face dataset (`snakemake share`, storyrl/analysis/share.py): what
    its dataset card declares beside the files."""

    license: str | None = None
    """The dataset's license: an id the Hub knows (https://hf.co/docs/hub/repositories-licenses,
    e.g. cc-by-4.0), or `other`. The stories carry the corpus's and the teacher's terms, so only
    you can choose it; None: the card declares none and `storyrl share` warns."""
    pretty_name: str = "storyrl results"
    """The dataset's display name on the Hub."""
    language: list[str] = ["en"]
    """Languages of the text (ISO 639-1), as the card's `language`."""
