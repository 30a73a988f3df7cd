"""The `storyrl` command: one subcommand per stage entry point; every rule calls one of these.

Stage settings arrive as `--section JSON` (the rule's own config section, validated here), paths
as explicit arguments, so the same call works from a rule, a shell and a test.
"""

import argparse
import json
import logging
import sys


def _section(model):
    """argparse type: a JSON object validated against a config section model."""
    def parse(text: str):
        from storyrl.config import ConfigError
        from pydantic import ValidationError
        try:
            return model.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as err:
            raise argparse.ArgumentTypeError(f"bad {model.__name__} section: {err}") from None
        except ConfigError as err:  # pragma: no cover - defensive
            raise argparse.ArgumentTypeError(str(err)) from None
    parse.__name__ = model.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    from storyrl import config as C

    p = argparse.ArgumentParser(prog="storyrl", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("check-config", help="validate config YAML file(s) and print the result")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_check_config)

    return p


def _check_config(args):
    from storyrl.config import load
    cfg = load(*args.files)
    print(json.dumps(cfg.model_dump(), indent=2, default=str))


def main(argv=None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args = build_parser().parse_args(argv)
    from storyrl.config import ConfigError
    try:
        args.func(args)
    except ConfigError as err:
        print(f"storyrl: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
