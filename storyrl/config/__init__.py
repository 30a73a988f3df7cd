"""Typed configuration, validated once and shared by the Snakefile, the CLI and the tests.

One module per stage's sections (`corpus`, `pretrain`, `teacher`, `rl`, `evaluate`,
`analysis`, `tracking`) on a common `base`, and `top` for the whole `Config` and the YAML loading. Each
stage reads only its own section, so a rule's params (and so Snakemake's rerun decisions)
depend on that section alone. Every field is documented once, by its docstring, which is also
its description in workflow/schemas/config.schema.json (`storyrl schema` writes it).

The package imports no stage code (tests/project/test_layers.py checks it), so importing it loads
pydantic and PyYAML only.
"""

import json

from storyrl.config.agreement import AgreementConfig, AgreementTeacher
from storyrl.config.analysis import AnalysisConfig, ShareConfig
from storyrl.config.base import (
    SAFE_NAME,
    ConfigError,
    Name,
    Section,
    Words,
    deep_merge,
    error_lines,
)
from storyrl.config.corpus import CorpusConfig, TokenizerConfig
from storyrl.config.evaluate import OfficialConfig, StoryEvalConfig, ZeroShotConfig
from storyrl.config.pretrain import (
    ComputeConfig,
    ModelConfig,
    PretrainConfig,
    PretrainJob,
    PretrainRun,
    TrainingConfig,
)
from storyrl.config.rl import (
    OVERRIDE_SECTIONS,
    PAPER_PROMPT,
    GroupConfig,
    PPOConfig,
    RLConfig,
    RLRun,
    RunSpec,
    SamplingConfig,
    expand_runs,
    max_batches,
    planned_checkpoints,
    state_due,
)
from storyrl.config.sharing import RLSharingConfig, ServerConfig, rl_packs
from storyrl.config.teacher import (
    HeuristicConfig,
    HFConfig,
    OpenAIConfig,
    RewardConfig,
    TeacherConfig,
    VLLMConfig,
)
from storyrl.config.top import (
    LOCAL_WEIGHT_BACKENDS,
    Config,
    load,
    read_yaml,
    record_text,
    validate,
)
from storyrl.config.tracking import TrackingConfig

SCHEMA_PATH = "workflow/schemas/config.schema.json"
"""Where the exported JSON schema lives, relative to the repository root."""


def schema_text() -> str:
    """The JSON schema of a config file, as committed at SCHEMA_PATH (editors check YAML with
    it through the files' `yaml-language-server: $schema=` header)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "storyrl config"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "AgreementConfig",
    "AgreementTeacher",
    "AnalysisConfig",
    "ShareConfig",
    "ComputeConfig",
    "Config",
    "ConfigError",
    "CorpusConfig",
    "GroupConfig",
    "HFConfig",
    "HeuristicConfig",
    "LOCAL_WEIGHT_BACKENDS",
    "ModelConfig",
    "Name",
    "OVERRIDE_SECTIONS",
    "OfficialConfig",
    "OpenAIConfig",
    "PAPER_PROMPT",
    "PPOConfig",
    "PretrainConfig",
    "PretrainJob",
    "PretrainRun",
    "RLConfig",
    "RLRun",
    "RLSharingConfig",
    "RewardConfig",
    "RunSpec",
    "SAFE_NAME",
    "SCHEMA_PATH",
    "SamplingConfig",
    "Section",
    "ServerConfig",
    "StoryEvalConfig",
    "TeacherConfig",
    "TokenizerConfig",
    "TrackingConfig",
    "TrainingConfig",
    "VLLMConfig",
    "Words",
    "ZeroShotConfig",
    "deep_merge",
    "error_lines",
    "expand_runs",
    "load",
    "max_batches",
    "planned_checkpoints",
    "read_yaml",
    "record_text",
    "rl_packs",
    "schema_text",
    "state_due",
    "validate",
]
