"""The agreement section: other teachers re-score a sample of every RL run's stories, so that
the paper's result can be read under a second judge (storyrl/stories/teacher/agreement.py, the
`teacher_agreement` rule and the `teacher_agreement*` tables and figure)."""

from pydantic import Field

from storyrl.config.base import Name, Section
from storyrl.config.teacher import TeacherConfig


class AgreementTeacher(TeacherConfig):
    """A further teacher: any teacher section. Its `model` may be left null, which keeps it off
    until the weights' path is set (the paper config names one so)."""

    model: str | None = None
    """Model name or local folder (vllm, hf: a folder with config.json; openai: the server's
    model name). Null: this teacher is off. Ignored by `heuristic`."""


class AgreementConfig(Section):
    """Judge agreement: off while no teacher in `teachers` is active."""

    teachers: dict[Name, AgreementTeacher] = {}
    """Further teachers by name (the name becomes a folder: results/agreement/<name>/). Each
    re-scores the same sample of stories; a `heuristic` teacher, or one whose `model` is set,
    is active."""
    stories_per_run: int = Field(360, ge=10)
    """Stories drawn from each RL run's rollouts: the same number from each tenth of training
    (the steps cut into ten equal parts), as far as a tenth has them."""
    seed: int = Field(0, ge=0)
    """Seed of the draw, and of the teachers' sampling."""

    def active(self) -> dict[str, AgreementTeacher]:
        """The teachers that run: heuristic ones, and the others once `model` is set."""
        return {
            name: t
            for name, t in self.teachers.items()
            if t.backend == "heuristic" or t.model is not None
        }
