"""Facts about the BabyLM 2025 evaluation (`babylm/evaluation-pipeline-2025`) that both the
config and the evaluation code need: the zero-shot task names, the GLUE tasks with their
fine-tuning settings, and the AoA revisions of each track.

Bottom layer (tests/test_layers.py): config validates against these, evaluation runs them.
"""

from typing import Literal, NamedTuple

ZERO_SHOT_TASKS = ("blimp", "blimp_supplement", "ewok", "entity_tracking", "comps", "wug_adj",
                   "wug_past")
"""Our zero-shot task names, in report order; `storyrl.evaluate.tasks.TASKS` decodes each."""


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
        (f"chck_{10 * i}M", 10 * i * m) for i in range(1, 11)]
    if track != "strict-small":
        steps += [(f"chck_{100 * i}M", 100 * i * m) for i in range(2, 11)]
    return steps
