"""The `storyrl` command's whole parser tree against a committed snapshot: every subcommand path,
its help, and each argument's flags, type, choices, default, nargs and help. Moving a stage's
subcommands into the stage's own module must leave what a user (or a rule) types unchanged.

Regenerate the snapshot on purpose only (a flag added or changed):
python tests/project/test_cli_tree.py
"""

import argparse
import json
import os
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).parents[1] / "data" / "cli_tree.json"
WIDTH = "100"  # argparse wraps help to $COLUMNS: fixed so the snapshot is the same everywhere


def _name(value) -> str | None:
    if value is None:
        return None
    return getattr(value, "__name__", repr(value))


def _argument(action: argparse.Action) -> dict:
    return {
        "kind": type(action).__name__,
        "flags": list(action.option_strings),
        "dest": action.dest,
        "nargs": action.nargs,
        "const": repr(action.const),
        "default": repr(action.default),
        "type": _name(action.type),
        "choices": None if action.choices is None else [str(c) for c in action.choices],
        "required": action.required,
        "help": action.help,
        "metavar": action.metavar,
    }


def tree(parser: argparse.ArgumentParser, path: str = "storyrl") -> dict[str, dict]:
    """{'storyrl rl train': {...}, ...}: one entry per parser, children after their parent."""
    node = {
        "prog": parser.prog,
        "description": parser.description,
        "defaults": {k: repr(v) for k, v in parser._defaults.items() if not callable(v)},
        "runs": callable(parser._defaults.get("func")),
        "arguments": [],
        "help_text": parser.format_help(),
    }
    out = {path: node}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            node["arguments"].append(
                {
                    "kind": "subcommands",
                    "dest": action.dest,
                    "required": action.required,
                    "commands": list(action.choices),
                    "help": {a.dest: a.help for a in action._choices_actions},
                }
            )
            for name, child in action.choices.items():
                out.update(tree(child, f"{path} {name}"))
        else:
            node["arguments"].append(_argument(action))
    return out


def current() -> dict[str, dict]:
    from storyrl.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        # Through JSON as the snapshot went: tuples (metavar, nargs) compare as lists.
        return json.loads(json.dumps(tree(build_parser())))
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def test_every_subcommand_and_flag_matches_the_snapshot():
    want = json.loads(SNAPSHOT.read_text())
    got = current()
    assert sorted(got) == sorted(want), "subcommands added or lost"
    for path in want:
        for key in want[path]:
            assert got[path][key] == want[path][key], f"`{path}`: {key} changed"
    assert list(got) == list(want), "subcommands listed in another order"


def test_the_tree_reaches_every_leaf():
    """The walk sees nested subcommands and the flags the stages add (a check on the check)."""
    got = current()
    assert "storyrl eval official aoa" in got and "storyrl analysis figure" in got
    flags = {f for a in got["storyrl rl train"]["arguments"] for f in a.get("flags", [])}
    assert {"--section", "--require-gpu", "--corpus-stats"} <= flags
    assert all(node["runs"] for path, node in got.items() if "subcommands" not in str(node))


def test_help_lists_every_stage():
    text = current()["storyrl"]["help_text"]
    for command in ("pretrain", "analysis", "teacher", "rl", "eval", "submission", "demo-eval"):
        assert command in text


if __name__ == "__main__":
    SNAPSHOT.parent.mkdir(exist_ok=True)
    SNAPSHOT.write_text(json.dumps(current(), indent=1, sort_keys=False) + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
