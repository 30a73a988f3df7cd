"""Several checkpoints in one evaluation job: the `--models JSON` list of `storyrl eval stories`
and `storyrl eval zero-shot-suite`.

A job pays its start-up once (imports, the teacher's engine, on SLURM the queue) and then
scores each checkpoint exactly as a job of its own would: same seeds, same files. The workflow
writes one list per group of checkpoints (a pretraining run's milestones, an RL run's
checkpoints and final policy); each entry names the checkpoint, its ids and its output(s).
"""

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from storyrl.config import ConfigError
from storyrl.core.units import parse_words


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    """Checkpoint folder."""
    model_id: str | None = None
    pretrain_words: int | None = None
    rl_words: int | None = None
    """None: read from the checkpoint (an RL folder's storyrl_rl.json), as the one-model form."""

    @field_validator("pretrain_words", "rl_words", mode="before")
    @classmethod
    def _words(cls, v):
        return None if v is None else parse_words(v)


class StoryEntry(_Entry):
    output: str
    """The stories Parquet to write."""
    run_id: str | None = None


class ZeroShotEntry(_Entry):
    variants: list[Literal["full", "fast"]] = ["fast"]
    parquet: str | None = None
    output_dir: str | None = None
    """Where the official layout is written (None: not written)."""


def parse_entries(text: str, entry: type[_Entry], flag: str = "--models") -> list:
    """The JSON list of `flag`, each entry validated; a bad one is a ConfigError naming the flag,
    the entry's index and the field."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{flag}: not JSON ({err})") from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{flag}: expected a non-empty JSON list of checkpoints")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(entry.model_validate(item))
        except ValidationError as err:
            where = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in err.errors()
            )
            raise ConfigError(f"{flag}[{i}]: {where}") from None
    outputs = [o for e in out for o in _outputs(e)]
    twice = sorted({o for o in outputs if outputs.count(o) > 1})
    if twice:
        raise ConfigError(f"{flag}: output(s) {twice} named by more than one checkpoint")
    return out


def _outputs(e: _Entry) -> list[str]:
    return [
        p
        for p in (
            getattr(e, "output", None),
            getattr(e, "parquet", None),
            getattr(e, "output_dir", None),
        )
        if p
    ]


def entries(args, entry: type[_Entry], single: dict) -> list:
    """`--models` if given, else the one-model form's flags (`single`: field -> value, with the
    required ones checked here because argparse cannot require them only without --models)."""
    if args.models is not None:
        given = [
            k for k, v in single.items() if v not in (None, False, []) and k not in ("variants",)
        ]
        if given:
            raise ConfigError(
                f"--models: give the checkpoints' settings in the list, not as "
                f"flags ({', '.join('--' + k.replace('_', '-') for k in given)})"
            )
        return parse_entries(args.models, entry)
    missing = [
        k for k, f in entry.model_fields.items() if f.is_required() and single.get(k) is None
    ]
    if missing:
        raise ConfigError(
            f"{', '.join('--' + k.replace('_', '-') for k in missing)} required (or --models)"
        )
    return [entry.model_validate({k: v for k, v in single.items() if v is not None})]
