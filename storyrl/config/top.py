"""The whole config: every section under one `Config`, its cross-section checks, and the
functions that read YAML files into it (`load`, `validate`, `read_yaml`)."""

from pathlib import Path

import yaml
from pydantic import ValidationError, model_validator

from storyrl.config.agreement import AgreementConfig
from storyrl.config.analysis import AnalysisConfig, ShareConfig
from storyrl.config.base import ConfigError, Name, Section, deep_merge, error_lines
from storyrl.config.corpus import CorpusConfig, TokenizerConfig
from storyrl.config.evaluate import OfficialConfig, StoryEvalConfig, ZeroShotConfig
from storyrl.config.pack_memory import check_packs
from storyrl.config.pretrain import ComputeConfig, ModelConfig, PretrainConfig, PretrainJob
from storyrl.config.rl import RLConfig, RLRun, RunSpec, budget_problem, expand_runs
from storyrl.config.sharing import RLSharingConfig, rl_packs
from storyrl.config.teacher import RewardConfig, TeacherConfig
from storyrl.config.tracking import TrackingConfig
from storyrl.core.babylm_spec import aoa_steps


class Config(Section):
    """A storyrl config file (config/config.yaml, config/paper.yaml): every stage's section."""

    corpora: dict[Name, CorpusConfig]
    tokenizer: TokenizerConfig = TokenizerConfig()
    models: dict[Name, ModelConfig]
    pretrain: PretrainConfig
    compute: ComputeConfig = ComputeConfig()
    """Whether GPU rules may fall back to the CPU (default yes; paper no)."""
    analysis: AnalysisConfig = AnalysisConfig()
    """Tables and figures (storyrl/analysis/)."""
    teacher: TeacherConfig = TeacherConfig()
    """Who scores the stories (default: the offline heuristic proxy; paper: vllm + Llama)."""
    reward: RewardConfig = RewardConfig()
    """How the teacher's scores and the story length make the reward (paper: c = 0.4)."""
    rl: RLConfig = RLConfig()
    """Settings shared by every RL run (paper values by default; see storyrl/config/rl.py)."""
    rl_runs: list[RunSpec] = []
    """The run table: RL runs as (pretraining checkpoint, seeds, variant); run ids are
    `<checkpoint>-seed<S>-<variant>` (paper: 8 runs)."""
    rl_sharing: RLSharingConfig = RLSharingConfig()
    """Several RL runs per GPU job with one teacher server (storyrl/config/sharing.py; default:
    one job per run)."""
    story_eval: StoryEvalConfig = StoryEvalConfig()
    """Teacher-scored stories of every checkpoint (storyrl/evaluate/stories.py)."""
    zero_shot: ZeroShotConfig = ZeroShotConfig()
    """BabyLM zero-shot evaluation (storyrl/evaluate/zero_shot.py)."""
    official: OfficialConfig = OfficialConfig()
    """GLUE, reading and AoA through a checkout of the official BabyLM pipeline
    (storyrl/evaluate/official.py); off unless `official.path` is set."""
    tracking: TrackingConfig = TrackingConfig()
    """Experiment tracking (TensorBoard, W&B, trackio; default none) and progress lines; passed
    to the jobs through the environment, so changing it reruns nothing."""
    agreement: AgreementConfig = AgreementConfig()
    """Further teachers that re-score a sample of every RL run's stories (judge agreement;
    storyrl/config/agreement.py); off while none is active."""
    share: ShareConfig = ShareConfig()
    """The results as a Hugging Face dataset (`snakemake share`): the card's license and names."""

    def pretrain_job(self, run_id: str) -> PretrainJob:
        run = self.pretrain.runs[run_id]
        return PretrainJob(
            run_id=run_id,
            model=self.models[run.model],
            seed=run.seed,
            training=self.pretrain.training,
            milestones=self.pretrain.milestones,
        )

    @model_validator(mode="after")
    def _references(self):
        for name, run in self.pretrain.runs.items():
            if run.corpus not in self.corpora:
                raise ValueError(
                    f"pretrain.runs.{name}.corpus: '{run.corpus}' is not in corpora "
                    f"({', '.join(self.corpora)})"
                )
            if run.model not in self.models:
                raise ValueError(
                    f"pretrain.runs.{name}.model: '{run.model}' is not in models "
                    f"({', '.join(self.models)})"
                )
        runs = list(self.pretrain.runs)
        for i, spec in enumerate(self.rl_runs):
            if spec.pretrain_run is None and len(runs) != 1:
                raise ValueError(
                    f"rl_runs.{i}.pretrain_run: needed when there are several "
                    f"pretraining runs ({', '.join(runs)})"
                )
            if spec.pretrain_run is not None and spec.pretrain_run not in runs:
                raise ValueError(
                    f"rl_runs.{i}.pretrain_run: '{spec.pretrain_run}' is not in "
                    f"pretrain.runs ({', '.join(runs)})"
                )
            if spec.checkpoint not in self.pretrain.milestones:
                raise ValueError(
                    f"rl_runs.{i}.checkpoint: {spec.checkpoint} words is not a "
                    f"pretraining milestone"
                )
        if self.official.enabled and self.official.aoa:
            # Revisions past the last milestone are left to the pipeline (it skips them); the
            # first of them holds the RL policy for the AoA score after RL.
            steps = aoa_steps(self.official.aoa_track)
            top = max([*self.pretrain.milestones, steps[0][1]])
            lack = [name for name, w in steps if w not in self.pretrain.milestones and w <= top]
            if lack:
                raise ValueError(
                    f"official.aoa_track: {self.official.aoa_track} reads the "
                    f"checkpoints {', '.join(lack)}, which are not pretraining "
                    "milestones (add them, or set official.aoa: false)"
                )
        try:
            plan = self.rl_plan()
        except ValueError as err:
            raise ValueError(f"rl_runs: {err}") from None
        for run_id, run in plan.items():
            if problem := budget_problem(run.rl):
                raise ValueError(f"rl_runs ({run_id}): {problem}")
            for name, cls, raw in (
                ("teacher", TeacherConfig, run.teacher),
                ("reward", RewardConfig, run.reward),
            ):
                try:
                    cls.model_validate(raw)
                except ValidationError as err:
                    raise ValueError(
                        f"rl_runs ({run_id}): overrides: " + "; ".join(error_lines(err, name))
                    ) from None
        check_packs(rl_packs(plan, self.rl_sharing.runs_per_gpu), plan, self.rl_sharing)
        return self

    def rl_plan(self) -> dict[str, RLRun]:
        """Every RL run of the run table, by run id, with its pretraining run filled in."""
        runs = expand_runs(
            self.rl,
            self.rl_runs,
            self.teacher.model_dump(mode="json"),
            self.reward.model_dump(mode="json"),
        )
        only = next(iter(self.pretrain.runs)) if len(self.pretrain.runs) == 1 else None
        return {k: r._replace(pretrain_run=r.pretrain_run or only) for k, r in runs.items()}


def validate(raw: dict, source: str = "config") -> Config:
    """Validate a config dict; errors name `source` and each offending key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        lines = [f"  {line}" for line in error_lines(err)]
        raise ConfigError(f"invalid config in {source}:\n" + "\n".join(lines)) from None


# Backends that load the teacher's weights in the job itself (`openai` asks a server by name).
LOCAL_WEIGHT_BACKENDS = ("vllm", "hf")


def teacher_sections(cfg: Config) -> dict[str, dict]:
    """Every teacher a job uses, by config key: the base one, each RL run's that differs after
    its overrides, and the active judges of `agreement`."""
    teachers = {"teacher": cfg.teacher.model_dump(mode="json")}
    for run_id, run in cfg.rl_plan().items():
        if run.teacher != teachers["teacher"]:
            teachers[f"rl_runs ({run_id}): teacher"] = run.teacher
    for name, t in cfg.agreement.active().items():
        teachers[f"agreement.teachers.{name}"] = t.model_dump(mode="json")
    return teachers


def load(*paths: str | Path) -> Config:
    """Load YAML files (later ones override earlier, key by key) and validate."""
    merged: dict = {}
    for p in paths:
        merged = deep_merge(merged, read_yaml(p))
    return validate(merged, source=", ".join(map(str, paths)))


def read_yaml(path: str | Path) -> dict:
    """A config file as a dict; errors are one line naming the file (and the line of a YAML
    syntax error)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config {path}: the file does not exist") from None
    except OSError as err:
        raise ConfigError(f"config {path}: cannot read it ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(
            str(x) for x in (getattr(err, "context", None), getattr(err, "problem", None)) if x
        )
        raise ConfigError(f"config {path}: YAML syntax error at {where}{what or err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: a config file must be a mapping of sections")
    return data


RECORD_HEADER = (
    "# The validated config of the run that wrote this folder (every key, defaults included).\n"
    "# `storyrl analysis` makes tables and figures with its `analysis` section.\n"
)


def record_text(config: dict) -> str:
    """A validated config (as a dict) as the YAML recorded beside a run's results."""
    return RECORD_HEADER + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
