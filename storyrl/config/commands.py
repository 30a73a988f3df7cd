"""What every stage's subcommands share: config sections as typed arguments, the GPU flag, and
`Stop`, the one-line way a stage ends. Each stage adds its own subcommands (an `add_parser(sub)`
next to its code); `storyrl.cli` only collects them and is the error boundary.

Stage settings arrive as `--section JSON` (the rule's own config section, validated here), paths
as explicit arguments, so the same call works from a rule, a shell and a test.
"""

import argparse
import importlib
import json


class Stop(Exception):
    """A stage ends with this one-line message and exit status 2 (no traceback)."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch size of 0 would fail deep inside a stage)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def section(model):
    """argparse type: a JSON object validated against a config section model."""

    def parse(text: str):
        from pydantic import ValidationError

        from storyrl.config import ConfigError

        try:
            return model.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as err:
            raise argparse.ArgumentTypeError(f"bad {model.__name__} section: {err}") from None
        except ConfigError as err:  # pragma: no cover - defensive
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = model.__name__
    return parse


def gpu_flag(q) -> None:
    q.add_argument(
        "--require-gpu",
        action="store_true",
        help="stop at once, saying why, if no CUDA device is usable "
        "(rules pass it unless compute.allow_cpu)",
    )


def progress_flag(q) -> None:
    q.add_argument(
        "--progress-fd",
        type=int,
        metavar="FD",
        help="also write each progress line to this open file descriptor (the rules open 3 on "
        "snakemake's own stderr, so the console shows what the job's log records)",
    )


def lazy(module: str, name: str):
    """A handler that imports its module only when its subcommand runs (torch stays unloaded
    while the parser is built)."""

    def run(args):
        return getattr(importlib.import_module(module), name)(args)

    run.__name__ = f"{module}:{name}"
    return run
