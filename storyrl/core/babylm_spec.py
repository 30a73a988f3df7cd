"""Facts about the BabyLM 2025 evaluation (`babylm/evaluation-pipeline-2025`) that both the
config and the evaluation code need: the zero-shot task names, the GLUE tasks with their
fine-tuning settings, and the AoA revisions of each track.

Bottom layer (tests/project/test_layers.py): config validates against these, evaluation runs them.
"""

from typing import Literal, NamedTuple

from storyrl.core.units import words_label

ZERO_SHOT_TASKS = (
    "blimp",
    "blimp_supplement",
    "ewok",
    "entity_tracking",
    "comps",
    "wug_adj",
    "wug_past",
)
"""Our zero-shot task names, in report order; `storyrl.evaluate.tasks.TASKS` decodes each."""

ZERO_SHOT_VARIANTS = {"full": "full_eval", "fast": "fast_eval"}
"""The sets of `evaluation_data/`: variant -> its folder."""

ZERO_SHOT_DIRS = {
    "blimp": {"full": "blimp_filtered", "fast": "blimp_fast"},
    "blimp_supplement": {"full": "supplement_filtered", "fast": "supplement_fast"},
    "ewok": {"full": "ewok_filtered", "fast": "ewok_fast"},
    "entity_tracking": {"full": "entity_tracking", "fast": "entity_tracking_fast"},
    "comps": {"full": "comps", "fast": "comps"},
    "wug_adj": {"full": "wug_adj_nominalization", "fast": "wug_adj_nominalization"},
    "wug_past": {"full": "wug_past_tense", "fast": "wug_past_tense"},
}
"""Each task's data folder under `evaluation_data/<variant folder>/`, per variant."""


class GlueTask(NamedTuple):
    num_labels: int
    metrics: tuple[str, ...]
    valid_metric: str
    batch: Literal["batch_size", "big_batch_size"] = "batch_size"
    epochs: Literal["epochs", "wsc_epochs"] = "epochs"


GLUE_TASKS = {
    # eval_finetuning.sh: boolq and multirc use the big-task batch size, wsc its own epochs,
    # mrpc and qqp keep the best model by F1, mnli has three labels and only accuracy.
    "boolq": GlueTask(2, ("accuracy", "f1", "mcc"), "accuracy", batch="big_batch_size"),
    "multirc": GlueTask(2, ("accuracy", "f1", "mcc"), "accuracy", batch="big_batch_size"),
    "rte": GlueTask(2, ("accuracy", "f1", "mcc"), "accuracy"),
    "wsc": GlueTask(2, ("accuracy", "f1", "mcc"), "accuracy", epochs="wsc_epochs"),
    "mrpc": GlueTask(2, ("accuracy", "f1", "mcc"), "f1"),
    "qqp": GlueTask(2, ("accuracy", "f1", "mcc"), "f1"),
    "mnli": GlueTask(3, ("accuracy",), "accuracy"),
}


def aoa_steps(track: str) -> list[tuple[str, int]]:
    """The pipeline's AoA revisions and word counts (`StepConfig.generate_checkpoint_steps`)."""
    m = 10**6
    steps = [(f"chck_{i}M", i * m) for i in range(1, 10)] + [
        (f"chck_{10 * i}M", 10 * i * m) for i in range(1, 11)
    ]
    if track != "strict-small":
        steps += [(f"chck_{100 * i}M", 100 * i * m) for i in range(2, 11)]
    return steps


# Leaderboard tracks: strict-small's revisions end at 100M, the others run to 1000M.
TRACKS = ("strict-small", "strict", "interaction")


class TrackError(ValueError):
    """A track, or a model's place in a track's revisions, that does not exist."""


def track_revisions(track: str) -> list[tuple[str, int]]:
    if track not in TRACKS:
        raise TrackError(f"track: '{track}' is not one of {', '.join(TRACKS)}")
    return aoa_steps("strict-small" if track == "strict-small" else "non-strict-small")


def policy_steps(track: str, start_words: int, steps: list[tuple[str, int]]):
    """(revisions up to the policy's pretraining checkpoint, the revision the policy fills).
    `steps`: the track's (name, words), `aoa_steps`."""
    before = [s for s in steps if s[1] <= start_words]
    after = [s for s in steps if s[1] > start_words]
    if not after:
        raise TrackError(
            f"aoa_track {track}: no revision after {words_label(start_words)} "
            "for the RL policy (the track ends before); use non-strict-small, "
            "whose revisions run to chck_1000M"
        )
    if not before or before[-1][1] != start_words:
        raise TrackError(
            f"aoa_track {track}: the RL policy's checkpoint "
            f"{words_label(start_words)} is not one of the track's revisions"
        )
    return before, after[0][0]


def revisions_for(track: str, words: int, rl_start: int | None = None) -> list[tuple[str, int]]:
    """The checkpoints a final model reports: the track's revisions up to its `words`; for an RL
    policy (`rl_start`: its pretraining checkpoint), those up to the checkpoint and then the
    next one, which the policy itself fills (`slot`, words None)."""
    steps = track_revisions(track)
    if rl_start is None:
        return [s for s in steps if s[1] <= words]
    before, slot = policy_steps(track, rl_start, steps)
    return before + [(slot, None)]
