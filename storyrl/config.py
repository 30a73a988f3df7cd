"""Typed configuration, validated once and shared by the Snakefile, the CLI and the tests.

Each stage reads only its own section, so a rule's params (and so Snakemake's rerun decisions)
depend on that section alone. Every field is documented once, here.
"""

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      ValidationError, ValidationInfo, field_validator, model_validator)

from storyrl.units import parse_words

Words = Annotated[int, BeforeValidator(parse_words)]
"""A word count: an integer or a label such as `500K`, `20M`, `1B`."""

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _safe_name(name: str) -> str:
    # Names become folders, run ids and shell words: a space splits a command, a slash nests
    # a folder the analysis never finds.
    if not SAFE_NAME.match(name):
        raise ValueError(f"'{name}' is not a safe name: use letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return name


Name = Annotated[str, AfterValidator(_safe_name)]
"""A name that becomes part of paths and run ids (runs, corpora, models, variants)."""


class ConfigError(ValueError):
    """A config that does not validate; the message names the file(s) and key(s)."""


def _takes_int(annotation) -> bool:
    if annotation is int:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return int in args and bool not in args
    return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _bool_is_not_an_int(cls, value, info: ValidationInfo):
        # pydantic's lax mode reads `true` as 1: `micro_batch_size: true` is a typo, not a size.
        if isinstance(value, bool) and _takes_int(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"expected an integer, got the boolean {str(value).lower()}")
        return value


def error_lines(err: ValidationError, prefix: str = "") -> list[str]:
    """One `key.path: message` line per error of a pydantic ValidationError."""
    out = []
    for e in err.errors():
        key = ".".join(str(p) for p in (*([prefix] if prefix else []), *e["loc"])) or "(top level)"
        out.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
    return out


# --------------------------------------------------------------------------- corpus
class CorpusConfig(Section):
    """A corpus slice: where its text comes from and which subset of it is used."""

    format: Literal["demo", "babylm", "hf", "text"]
    """`demo`: generated synthetic BabyLM-format corpus; `babylm`: the official folder of six
    `*.train` files (`train_100M/` or `train_10M/`, or the parent holding one of them);
    `hf`: a Hugging Face dataset saved with `save_to_disk`, or Parquet file(s), with a `text`
    column; `text`: plain text file(s) or a folder of them, one document per line."""
    path: str | None = None
    """Where the text is (not used by `demo`)."""
    split: str = "train"
    """For `hf` datasets saved as a DatasetDict: the split to use."""
    demo_words: Words = 3_000_000
    """For `demo`: the size of the generated corpus in words."""
    demo_seed: int = 0
    """For `demo`: the generator's seed."""
    fraction: float = Field(0.9, gt=0, le=1)
    """Share of the shuffled lines kept (paper: 0.9)."""
    seed: int = 42
    """Seed of the shuffle that picks the subset (paper: 42)."""
    empty_rows: Literal["drop", "keep"] = "drop"
    """`keep` (the authors'): empty rows of the subset stay, and each adds its EOS to the token
    stream; `drop`: they are removed after the selection (the selection is the same)."""
    group_rows: int | None = Field(None, ge=1)
    """The authors' 1000: rows are joined per group of this many and each group is cut into
    blocks on its own, its tail shorter than a block dropped (`datasets.map(batched=True)` with
    run_clm's `group_texts`). None: one stream, only its final tail dropped."""
    ratio_rows: int | None = Field(None, ge=1)
    """The authors' 10000: tokens per word, which turns milestone words into steps, is measured
    on the first this-many rows of the shuffled subset without special tokens and without EOS.
    None: over the whole stream, EOS included (then words seen = tokens seen / ratio)."""

    @model_validator(mode="after")
    def _path_needed(self):
        if self.format != "demo" and not self.path:
            raise ValueError(f"format '{self.format}' needs 'path'")
        return self


# --------------------------------------------------------------------------- tokenizer
class TokenizerConfig(Section):
    """Byte-level BPE trained on each corpus subset."""

    vocab_size: int = Field(16_000, ge=300)
    min_frequency: int = Field(2, ge=1)
    bos: str = "<s>"
    pad: str = "<pad>"
    eos: str = "</s>"
    """Joins documents in the token stream; ends every student story."""
    unk: str = "<unk>"
    mask: str = "<mask>"

    @property
    def special_tokens(self) -> list[str]:
        # This order gives the ids 0..4 that the paper's tokenizer has.
        return [self.bos, self.pad, self.eos, self.unk, self.mask]


# --------------------------------------------------------------------------- model
class ModelConfig(Section):
    """A GPT-2 built from a config with random weights."""

    n_layer: int = Field(12, ge=1)
    n_head: int = Field(12, ge=1)
    n_embd: int = Field(768, ge=8)
    n_positions: int = Field(512, ge=8)
    """Context length; pretraining blocks have this many tokens."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Used for residual, embedding and attention dropout alike."""

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


# --------------------------------------------------------------------------- pretraining
class TrainingConfig(Section):
    """Pretraining hyper-parameters (paper values are the defaults)."""

    lr: float = Field(5e-4, gt=0)
    warmup_ratio: float = Field(0.01, ge=0, lt=1)
    """Linear warm-up as a share of the whole run, then linear decay to 0 at the run's end."""
    weight_decay: float = Field(0.0, ge=0)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    grad_clip: float = Field(1.0, gt=0)
    batch_size: int = Field(256, ge=1)
    """Sequences per optimizer step, over all devices (the effective batch)."""
    micro_batch_size: int = Field(32, ge=1)
    """Sequences per device per forward pass; gradient accumulation makes up the rest."""
    epochs: float = Field(11, gt=0)
    """Length of the planned run; the learning-rate schedule spans all of it (paper: 11 epochs,
    ≈990M words, so that the 900M milestone is reached before the learning rate is 0)."""
    bf16: Literal["auto", True, False] = "auto"
    """`auto`: bf16 mixed precision on a GPU that supports it, fp32 on CPU."""
    log_every: int = Field(10, ge=1)
    """Steps between rows of the pretraining log."""
    save_every: int = Field(500, ge=1)
    """Steps between resume states (milestone checkpoints are saved in addition)."""
    keep_states: int = Field(2, ge=1)
    """Resume states kept on disk (the newest ones)."""
    threads: int | None = None
    """torch CPU threads; None leaves torch's default."""


class ComputeConfig(Section):
    """What the GPU rules (pretrain, rl, story_eval, zero_shot) may run on."""

    allow_cpu: bool = True
    """False (paper): a GPU job that sees no CUDA device stops at once and says why (device
    count, torch's CUDA build, driver) instead of training on CPU until its time limit."""


class PretrainRun(Section):
    """One pretraining run: a corpus slice, a model shape and a seed."""

    corpus: str
    model: str
    seed: int = 42


class PretrainJob(Section):
    """What the pretraining rule passes to `storyrl pretrain`: one run, fully resolved."""

    run_id: str
    model: ModelConfig
    training: TrainingConfig
    milestones: list[Words]
    seed: int


class PretrainConfig(Section):
    training: TrainingConfig = TrainingConfig()
    milestones: list[Words]
    """Words seen at which a checkpoint is kept (`1M`, `20M`, ...); they name the checkpoints."""
    runs: dict[Name, PretrainRun]

    @model_validator(mode="after")
    def _milestones_increase(self):
        if not self.milestones:
            raise ValueError("milestones: at least one is needed")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError("milestones must be strictly increasing")
        if self.milestones[0] <= 0:
            raise ValueError("milestones must be > 0")
        return self


# --------------------------------------------------------------------------- teacher, reward
# Defined in the teacher's own module (imported here, below Section, to avoid an import cycle).
from storyrl.teacher.config import RewardConfig, TeacherConfig  # noqa: E402


# --------------------------------------------------------------------------- top level
# Imported here, after Section and Words exist: storyrl.rl.config builds on them.
from storyrl.rl.config import RLConfig, RLRun, RunSpec, expand_runs  # noqa: E402
from storyrl.evaluate.zero_shot import ZeroShotConfig  # noqa: E402  (needs Section above)
from storyrl.evaluate.stories import StoryEvalConfig  # noqa: E402
from storyrl.evaluate.official import OfficialConfig, aoa_steps  # noqa: E402
from storyrl.analysis.config import AnalysisConfig  # noqa: E402  (needs Section above)


class Config(Section):
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
    """Settings shared by every RL run (paper values by default; see storyrl/rl/config.py)."""
    rl_runs: list[RunSpec] = []
    """The run table: RL runs as (pretraining checkpoint, seeds, variant); run ids are
    `<checkpoint>-seed<S>-<variant>` (paper: 8 runs)."""
    story_eval: StoryEvalConfig = StoryEvalConfig()
    """Teacher-scored stories of every checkpoint (storyrl/evaluate/stories.py)."""
    zero_shot: ZeroShotConfig = ZeroShotConfig()
    """BabyLM zero-shot evaluation (storyrl/evaluate/zero_shot.py)."""
    official: OfficialConfig = OfficialConfig()
    """GLUE, reading and AoA through a checkout of the official BabyLM pipeline
    (storyrl/evaluate/official.py); off unless `official.path` is set."""

    def pretrain_job(self, run_id: str) -> PretrainJob:
        run = self.pretrain.runs[run_id]
        return PretrainJob(run_id=run_id, model=self.models[run.model], seed=run.seed,
                           training=self.pretrain.training, milestones=self.pretrain.milestones)

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
                raise ValueError(f"rl_runs.{i}.pretrain_run: needed when there are several "
                                 f"pretraining runs ({', '.join(runs)})")
            if spec.pretrain_run is not None and spec.pretrain_run not in runs:
                raise ValueError(f"rl_runs.{i}.pretrain_run: '{spec.pretrain_run}' is not in "
                                 f"pretrain.runs ({', '.join(runs)})")
            if spec.checkpoint not in self.pretrain.milestones:
                raise ValueError(f"rl_runs.{i}.checkpoint: {spec.checkpoint} words is not a "
                                 f"pretraining milestone")
        if self.official.enabled and self.official.aoa:
            # Revisions past the last milestone are left to the pipeline (it skips them); the
            # first of them holds the RL policy for the AoA score after RL.
            steps = aoa_steps(self.official.aoa_track)
            top = max([*self.pretrain.milestones, steps[0][1]])
            lack = [name for name, w in steps if w not in self.pretrain.milestones and w <= top]
            if lack:
                raise ValueError(f"official.aoa_track: {self.official.aoa_track} reads the "
                                 f"checkpoints {', '.join(lack)}, which are not pretraining "
                                 "milestones (add them, or set official.aoa: false)")
        try:
            plan = self.rl_plan()
        except ValueError as err:
            raise ValueError(f"rl_runs: {err}") from None
        for run_id, run in plan.items():
            for name, cls, raw in (("teacher", TeacherConfig, run.teacher),
                                   ("reward", RewardConfig, run.reward)):
                try:
                    cls.model_validate(raw)
                except ValidationError as err:
                    raise ValueError(f"rl_runs ({run_id}): overrides: "
                                     + "; ".join(error_lines(err, name))) from None
        return self

    def rl_plan(self) -> dict[str, RLRun]:
        """Every RL run of the run table, by run id, with its pretraining run filled in."""
        runs = expand_runs(self.rl, self.rl_runs, self.teacher.model_dump(mode="json"),
                           self.reward.model_dump(mode="json"))
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


def check_teacher_weights(cfg: Config, source: str = "config") -> None:
    """Every teacher that loads weights in a job (the base one, and each RL run's after its
    overrides) names a local model folder with a config.json.

    Jobs run with the Hugging Face hub offline (workflow/rules/common.smk): compute nodes often
    have no internet, and 100 jobs would each fetch 16 GB into one shared cache. A hub id or a
    wrong path would only fail inside a GPU job; the workflow calls this when it plans.
    """
    teachers = {"teacher": cfg.teacher.model_dump(mode="json")}
    for run_id, run in cfg.rl_plan().items():
        if run.teacher != teachers["teacher"]:
            teachers[f"rl_runs ({run_id}): teacher"] = run.teacher
    lines = []
    for key, teacher in teachers.items():
        model = Path(teacher["model"])
        if teacher["backend"] not in LOCAL_WEIGHT_BACKENDS or (model / "config.json").is_file():
            continue
        why = "a folder without config.json" if model.is_dir() else "no such folder"
        lines.append(f"  {key}.model: '{model}': {why}. The '{teacher['backend']}' teacher loads "
                     "its weights from a local folder (jobs run with the hub offline): download "
                     "them once, e.g. `hf download meta-llama/Llama-3.1-8B-Instruct --local-dir "
                     "DIR`, and set the key to DIR")
    if lines:
        raise ConfigError(f"invalid config in {source}:\n" + "\n".join(lines))


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
        what = " ".join(str(x) for x in (getattr(err, "context", None), getattr(err, "problem", None)) if x)
        raise ConfigError(f"config {path}: YAML syntax error at {where}{what or err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: a config file must be a mapping of sections")
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Merge like Snakemake does with several --configfile: nested dicts key by key."""
    out = dict(base)
    for k, v in update.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
