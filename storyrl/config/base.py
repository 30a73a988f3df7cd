"""The pieces every config section is built from: the `Section` base model, word counts, safe
names, `ConfigError`, and the helpers that merge YAML files and phrase validation errors.

This package is the bottom layer (tests/project/test_layers.py): it imports no stage code, so every
stage, the CLI and the Snakefile can import it without loading each other.
"""

import re
import types
import typing
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from storyrl.core.units import parse_words

# The schema shows what a YAML file may hold: a word count is also a label such as `20M`.
Words = Annotated[int, BeforeValidator(parse_words, json_schema_input_type=int | str)]
"""A word count: an integer or a label such as `500K`, `20M`, `1B`."""

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _safe_name(name: str) -> str:
    # Names become folders, run ids and shell words: a space splits a command, a slash nests
    # a folder the analysis never finds.
    if not SAFE_NAME.match(name):
        raise ValueError(
            f"'{name}' is not a safe name: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
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
    # use_attribute_docstrings: each field's docstring is its description in the JSON schema
    # (workflow/schemas/config.schema.json), so the docs are written once, beside the field.
    # allow_inf_nan=False: `.nan` or `.inf` for a weight, a coefficient or a learning rate
    # would turn every reward or update into NaN without an error.
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False
    )

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


def deep_merge(base: dict, update: dict) -> dict:
    """Merge like Snakemake does with several --configfile: nested dicts key by key."""
    out = dict(base)
    for k, v in update.items():
        out[k] = (
            deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out
