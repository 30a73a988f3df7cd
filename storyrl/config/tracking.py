"""The tracking section: where pretraining and RL send their metrics besides the Parquet tables,
and how often they print their progress.

A side channel: it changes no result, so the workflow passes it to the jobs through the
environment (STORYRL_TRACKING), not through a rule's params, and a new backend reruns nothing.
API keys are not config: W&B reads WANDB_API_KEY from the environment when a user syncs.
"""

from typing import Literal

from pydantic import Field

from storyrl.config.base import Name, Section


class TrackingConfig(Section):
    """Experiment tracking and progress lines (default: no tracking, a progress line a minute)."""

    backend: Literal["none", "tensorboard", "wandb", "trackio"] = "none"
    """Where metrics go: `none`; `tensorboard` (event files); `wandb` (Weights & Biases, offline
    by default); `trackio` (a local SQLite database). Pretraining and GRPO/RLOO report through
    the Hugging Face Trainer's own `report_to`; the PPO loop logs every steps-table column with
    the budget words as the step. Needs the `tracking` extra (`pip install 'storyrl[tracking]'`;
    trackio is its own extra, `storyrl[trackio]`)."""
    project: Name = "storyrl"
    """The W&B / trackio project, and the TensorBoard folder under `dir`."""
    dir: str = "results/tracking"
    """Folder of everything the backend writes, relative to the working directory (the
    workflow's: results/tracking): `<dir>/tensorboard/<project>/<stage>/<run id>/`,
    `<dir>/wandb/` (offline runs, for `wandb sync`), `<dir>/trackio/`."""
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"
    """W&B mode: `offline` writes runs under `<dir>/wandb/` and `wandb sync` uploads them later
    (compute nodes often have no internet); `online` needs WANDB_API_KEY in the environment."""
    progress_every_s: float = Field(60.0, gt=0)
    """Seconds between two progress lines (step k/N, words seen, latest loss or score, s/step,
    ETA) in a log file; in a terminal a progress bar is drawn instead."""
