"""Which models and runs the official BabyLM pipeline's jobs take (GLUE, reading, AoA), and
what each leaderboard submission needs."""

from typing import NamedTuple

from storyrl.config import Config, ConfigError, RLRun
from storyrl.core import layout
from storyrl.core.babylm_spec import (
    GLUE_TASKS,
    ZERO_SHOT_TASKS,
    TrackError,
    aoa_steps,
    revisions_for,
)
from storyrl.plan.models import Model, largest_start, pre_model_id


class Official(NamedTuple):
    glue_models: list[str]
    reading_models: list[str]
    aoa_runs: list[str]
    """Pretraining runs whose milestones get the AoA score."""
    aoa_rl_runs: dict[str, RLRun]
    """RL runs whose final policy gets the AoA score next to its starting checkpoint."""
    aoa_milestones: list[int]

    @property
    def models(self) -> list[str]:
        """Models with an eval/<model>.official.parquet: GLUE, reading or both."""
        return sorted(set(self.glue_models) | set(self.reading_models))


def table_models(cfg: Config, rl_runs, models: dict[str, Model], full_set: set[str]) -> set[str]:
    """The BabyLM table's models (storyrl.analysis.tables.babylm_table): the full-set
    pretraining checkpoint(s), and the final policies from the largest RL start of seed
    analysis.paper_seed (all seeds where no run has it)."""
    pre = {m for m in full_set if not models[m].run_id}
    if not rl_runs:
        return pre
    top = largest_start(rl_runs)
    finals = {run_id: r for run_id, r in rl_runs.items() if r.checkpoint == top}
    seed = cfg.analysis.paper_seed
    shown = {run_id for run_id, r in finals.items() if r.rl.seed == seed} or set(finals)
    return pre | {f"{run_id}-rl-final" for run_id in shown}


def official(cfg: Config, rl_runs, models: dict[str, Model], full_set: set[str]) -> Official:
    o = cfg.official
    glue: list[str] = []
    if o.enabled and o.glue:
        sel = o.glue_models
        if isinstance(sel, list):
            unknown = [m for m in sel if m not in models]
            if unknown:
                raise ConfigError(
                    f"official.glue_models: unknown model id(s) {unknown}; this plan's models: "
                    + ", ".join(models)
                )
            glue = sorted(set(sel))
        else:
            chosen = {
                "table": lambda: table_models(cfg, rl_runs, models, full_set),
                "full_set": lambda: full_set,
                "all": lambda: models,
            }[sel]()
            glue = sorted(chosen)
    reading = (
        sorted(full_set if o.models == "full_set" else models) if o.enabled and o.reading else []
    )
    aoa_runs = list(cfg.pretrain.runs) if o.enabled and o.aoa else []
    # The track's revisions the pretraining run has (config validation: all up to its last
    # milestone); later ones are left to the pipeline, which skips them.
    milestones = [w for _, w in aoa_steps(o.aoa_track) if w in cfg.pretrain.milestones]
    return Official(glue, reading, aoa_runs, aoa_rl_runs(cfg, rl_runs), milestones)


def aoa_rl_runs(cfg: Config, rl_runs: dict[str, RLRun]) -> dict[str, RLRun]:
    """RL runs from the BabyLM table's checkpoint (the largest start), whose policy gets the
    pipeline's AoA score next to that checkpoint's: the policy takes the track's revision after
    the checkpoint, so only a track that goes past it has them (paper: non-strict-small)."""
    o = cfg.official
    if not (o.enabled and o.aoa and rl_runs):
        return {}
    top = largest_start(rl_runs)
    words = [w for _, w in aoa_steps(o.aoa_track)]
    if top not in words or top == words[-1]:
        return {}
    return {run_id: r for run_id, r in rl_runs.items() if r.checkpoint == top}


class Submission(NamedTuple):
    track: str
    revisions: list[tuple[str, str]]
    """(chck_<N>M, model id) in the track's order."""
    aoa: tuple[str, str] | None
    """(output folder of the AoA run, the model name it read) or None."""
    lacking: list[str]
    """What this config does not make, in words."""


def submission(cfg: Config, models, off: Official, results, model_id, pretrain_run, rl_run=None):
    m = models[model_id]
    o = cfg.official
    small = o.aoa_track == "strict-small"
    track = "strict-small" if small else ("interaction" if rl_run else "strict")
    try:
        revs = revisions_for(track, m.pretrain_words, m.pretrain_words if rl_run else None)
    except TrackError:
        return None  # an RL policy whose checkpoint is not one of the track's revisions
    pairs = [
        (name, model_id if words is None else pre_model_id(pretrain_run, words))
        for name, words in revs
    ]
    lacking = [f"the pretraining milestone of {n}" for n, mid in pairs if mid not in models]
    if not pairs:
        lacking.append(f"a checkpoint of the {track} track (chck_1M, ...) up to the final model")
    if not o.enabled:
        lacking.append("official.path (GLUE, reading and AoA run in the official pipeline)")
    else:
        lacking += [f"official.glue: {t}" for t in GLUE_TASKS if t not in o.glue]
        lacking += [] if model_id in off.glue_models else [f"official.glue_models: {model_id}"]
        lacking += [] if o.reading else ["official.reading"]
    lacking += [f"zero_shot.tasks: {t}" for t in ZERO_SHOT_TASKS if t not in cfg.zero_shot.tasks]
    aoa = None
    if rl_run in off.aoa_rl_runs:
        aoa = (str(layout.official_dir(results, f"{rl_run}-rl-aoa")), f"storyrl/{rl_run}-rl")
    elif rl_run is None and pretrain_run in off.aoa_runs:
        aoa = (str(layout.official_dir(results, f"{pretrain_run}-aoa")), f"storyrl/{pretrain_run}")
    elif o.enabled:
        lacking.append("official.aoa (the AoA surprisal over the revisions)")
    return Submission(track, pairs, aoa, lacking)


def submissions(cfg: Config, rl_runs, models, full_set, off: Official, results: str):
    out = {}
    for prun in cfg.pretrain.runs:
        for w in cfg.pretrain.milestones:
            mid = pre_model_id(prun, w)
            if mid in full_set:
                out[mid] = submission(cfg, models, off, results, mid, prun)
    for run_id, r in rl_runs.items():
        mid = f"{run_id}-rl-final"
        if mid in full_set:
            out[mid] = submission(cfg, models, off, results, mid, r.pretrain_run, run_id)
    return {k: v for k, v in out.items() if v is not None}
