"""Experiment tracking (config `tracking`): TensorBoard, Weights & Biases or trackio, offline.

Two ways in, as the field's tools expect them:
- the Hugging Face Trainers (pretraining; GRPO/RLOO through TRL) report through their own
  `report_to`: `hf_reporting` gives the TrainingArguments and sets the environment their
  integrations read; `RunTags` adds our run id and config hash to the run they open;
- our PPO loop logs its steps-table rows through a `Tracker`, with the budget words as the step.

The section reaches a job through the environment variable STORYRL_TRACKING (JSON), set by the
workflow: tracking changes no result, so it must not be a rule's params (a new backend would
rerun 30-hour jobs). The backends' packages are imported only when chosen (extras `tracking`,
`trackio`). API keys never pass through here: W&B reads WANDB_API_KEY itself.
"""

import importlib.util
import json
import math
import os
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from storyrl.config import ConfigError, TrackingConfig, error_lines

ENV = "STORYRL_TRACKING"
PACKAGES = {
    "tensorboard": ("tensorboard", "tracking"),
    "wandb": ("wandb", "tracking"),
    "trackio": ("trackio", "trackio"),
}


def from_env(environ=None) -> TrackingConfig:
    """The tracking section the workflow put in STORYRL_TRACKING; defaults when it is unset."""
    raw = (os.environ if environ is None else environ).get(ENV)
    if not raw:
        return TrackingConfig()
    try:
        return TrackingConfig.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as err:
        why = "; ".join(error_lines(err, "tracking")) if isinstance(err, ValidationError) else err
        raise ConfigError(f"environment variable {ENV}: {why}") from None


def require(cfg: TrackingConfig) -> None:
    """Fail at the start of a job, not at its first log, when the backend is not installed."""
    if cfg.backend == "none":
        return
    module, extra = PACKAGES[cfg.backend]
    # Looked up, not imported: trackio reads TRACKIO_DIR once, when imported.
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"tracking.backend: '{cfg.backend}' needs the package {module}, which "
            f"is not installed: `pip install 'storyrl[{extra}]'`, or set "
            "tracking.backend: none"
        )


def tensorboard_dir(cfg: TrackingConfig, stage: str, run_id: str) -> Path:
    return Path(cfg.dir) / "tensorboard" / cfg.project / stage / run_id


def _backend_env(cfg: TrackingConfig, stage: str, run_id: str) -> dict[str, str]:
    """Environment the backend's library reads (trackio reads TRACKIO_DIR when imported)."""
    if cfg.backend == "tensorboard":
        return {"TENSORBOARD_LOGGING_DIR": str(tensorboard_dir(cfg, stage, run_id))}
    if cfg.backend == "wandb":
        return {
            "WANDB_PROJECT": cfg.project,
            "WANDB_DIR": str(Path(cfg.dir).absolute()),
            "WANDB_MODE": cfg.wandb_mode,
            "WANDB_RUN_GROUP": stage,
        }
    if cfg.backend == "trackio":
        return {"TRACKIO_DIR": str((Path(cfg.dir) / "trackio").absolute())}
    return {}


@contextmanager
def backend_environment(cfg: TrackingConfig, stage: str, run_id: str):
    """Set the backend's environment for the duration of a run, then restore it."""
    env = _backend_env(cfg, stage, run_id)
    if cfg.backend == "wandb":
        (Path(cfg.dir)).mkdir(parents=True, exist_ok=True)  # wandb falls back to /tmp without it
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def hf_reporting(cfg: TrackingConfig, run_id: str) -> dict:
    """TrainingArguments fields for a Hugging Face Trainer: its integration, named by run id."""
    if cfg.backend == "none":
        return {"report_to": "none"}
    return {"report_to": [cfg.backend], "run_name": run_id, "project": cfg.project}


def make_run_tags(cfg: TrackingConfig, trainer, run_id: str, config_hash: str):
    """A Trainer callback that writes the run id and config hash into the integration's run
    once it is open (the integrations come before our callbacks, so theirs opens first)."""
    from transformers import TrainerCallback

    tags = {"run_id": run_id, "config_hash": config_hash}

    class RunTags(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if not state.is_world_process_zero or cfg.backend == "none":
                return
            for cb in trainer.callback_handler.callbacks:
                writer = getattr(cb, "tb_writer", None)
                if writer is not None:
                    for k, v in tags.items():
                        writer.add_text(f"storyrl/{k}", v)
                    writer.flush()
            if cfg.backend == "wandb":
                import wandb

                if wandb.run is not None:
                    wandb.run.config.update(
                        {f"storyrl_{k}": v for k, v in tags.items()}, allow_val_change=True
                    )
            if cfg.backend == "trackio":
                import trackio

                trackio.config.update({f"storyrl_{k}": v for k, v in tags.items()})

    return RunTags()


class Tracker:
    """Our loop's metrics into the chosen backend: `log(metrics, step)` takes numbers (NaN and
    non-numbers are left out, as a column a step has no value in)."""

    def __init__(
        self, cfg: TrackingConfig, stage: str, run_id: str, config: dict, step_name: str = "step"
    ):
        self.cfg, self.backend, self.step_name = cfg, cfg.backend, step_name
        if self.backend == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(tensorboard_dir(cfg, stage, run_id)))
            for k, v in config.items():
                self.writer.add_text(f"storyrl/{k}", str(v))
        elif self.backend == "wandb":
            import wandb

            self.run = wandb.init(
                project=cfg.project,
                name=run_id,
                group=stage,
                job_type=stage,
                dir=str(Path(cfg.dir).absolute()),
                mode=cfg.wandb_mode,
                config={f"storyrl_{k}": v for k, v in config.items()},
                reinit="finish_previous",
            )
            # The budget words are the x axis of every metric; W&B's own step stays a counter
            # (a step with no teacher words would not advance the budget).
            self.run.define_metric(step_name)
            self.run.define_metric("*", step_metric=step_name)
        elif self.backend == "trackio":
            import trackio

            self.run = trackio.init(
                project=cfg.project,
                name=run_id,
                group=stage,
                config={f"storyrl_{k}": v for k, v in config.items()},
                resume="allow",
                embed=False,
            )

    def log(self, metrics: dict, step: int) -> None:
        values = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        if self.backend == "tensorboard":
            for k, v in values.items():
                self.writer.add_scalar(k, v, global_step=step)
            self.writer.flush()  # a job killed at its time limit keeps every step logged
        elif self.backend == "wandb":
            self.run.log({**values, self.step_name: step})
        elif self.backend == "trackio":
            import trackio

            trackio.log(values, step=step)

    def close(self) -> None:
        if self.backend == "tensorboard":
            self.writer.close()
        elif self.backend == "wandb":
            self.run.finish()
        elif self.backend == "trackio":
            import trackio

            trackio.finish()


@contextmanager
def tracker(cfg: TrackingConfig, stage: str, run_id: str, config: dict, step_name: str = "step"):
    """An open Tracker for one run (in the backend's environment), closed at the end."""
    require(cfg)
    with backend_environment(cfg, stage, run_id):
        t = Tracker(cfg, stage, run_id, config, step_name)
        try:
            yield t
        finally:
            t.close()
