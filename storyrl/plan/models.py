"""The models a plan evaluates: every pretraining milestone, every RL checkpoint and final
policy, and the evaluation groups they are scored in."""

from typing import NamedTuple

from storyrl.config import Config, RLRun, planned_checkpoints
from storyrl.core import layout
from storyrl.core.units import words_label


class Model(NamedTuple):
    """A checkpoint that the evaluation rules score."""

    path: str
    inputs: list[str]
    """Files that exist once the checkpoint does (an RL run's summary stands for its folders)."""
    pretrain_words: int
    rl_words: int | None
    """0 for pretraining checkpoints; None: read from the checkpoint (an RL run's final words)."""
    run_id: str
    group: str
    """The evaluation group whose one job scores this model: its pretraining run (the curve of
    milestones) or its RL run (checkpoints and final policy)."""
    label: str
    """The model id after `<group>-pre-` / `<group>-rl-`: what varies inside a group."""

    @property
    def kind(self) -> str:
        return "rl" if self.run_id else "pre"


def pre_model_id(pretrain_run: str, words: int) -> str:
    return f"{pretrain_run}-pre-{words_label(words)}"


def models(cfg: Config, rl_runs: dict[str, RLRun], results: str) -> dict[str, Model]:
    out = {}
    for prun in cfg.pretrain.runs:
        for w in cfg.pretrain.milestones:
            ckpt = str(layout.checkpoint_dir(results, prun, w))
            out[pre_model_id(prun, w)] = Model(ckpt, [ckpt], w, 0, "", prun, words_label(w))
    for run_id, run in rl_runs.items():
        done = [str(layout.summary_path(results, run_id))]
        for w in planned_checkpoints(run.rl):
            path = str(layout.rl_checkpoint_dir(results, run_id, w))
            out[f"{run_id}-rl-{words_label(w)}"] = Model(
                path, done, run.checkpoint, w, run_id, run_id, words_label(w)
            )
        final = str(layout.rl_checkpoint_dir(results, run_id, None))
        out[f"{run_id}-rl-final"] = Model(
            final, done, run.checkpoint, None, run_id, run_id, "final"
        )
    return out


def largest_start(rl_runs: dict[str, RLRun]) -> int:
    return max(r.checkpoint for r in rl_runs.values())


def full_set_models(cfg: Config, rl_runs: dict[str, RLRun]) -> set[str]:
    """The paper scores the full sets on the largest RL starting checkpoint (900M-pre) and on
    every final policy; fast sets on every checkpoint."""
    if not rl_runs:
        last = cfg.pretrain.milestones[-1]
        return {pre_model_id(p, last) for p in cfg.pretrain.runs}
    top = largest_start(rl_runs)
    starts = {pre_model_id(r.pretrain_run, top) for r in rl_runs.values() if r.checkpoint == top}
    return starts | {f"{run_id}-rl-final" for run_id in rl_runs}


def eval_shapes(all_models: dict[str, Model]) -> dict[tuple[str, str, tuple], list[str]]:
    """{(suffix of the rule names, kind, labels) -> [group ids]}, kind 'pre' or 'rl'.

    A rule's outputs are a fixed list, so groups of the same labels share a rule; the most
    common shape of a kind gets the plain name (story_eval_rl), so the profile sizes it."""
    groups: dict[tuple[str, str], list[str]] = {}
    for m in all_models.values():
        groups.setdefault((m.kind, m.group), []).append(m.label)
    shapes: dict[tuple[str, tuple], list[str]] = {}
    for (kind, group), labels in groups.items():
        shapes.setdefault((kind, tuple(labels)), []).append(group)
    out, seen = {}, {}
    for (kind, labels), members in sorted(shapes.items(), key=lambda kv: -len(kv[1])):
        seen[kind] = seen.get(kind, 0) + 1
        out[(f"{kind}{seen[kind] if seen[kind] > 1 else ''}", kind, labels)] = members
    return out
