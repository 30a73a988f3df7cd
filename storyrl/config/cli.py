"""`storyrl check-config` and `storyrl schema`: the config's own subcommands."""

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from storyrl.config import SCHEMA_PATH

    s = sub.add_parser("check-config", help="validate config YAML file(s) and print the result")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=check_config)

    s = sub.add_parser("schema", help="write the config's JSON schema (editors check YAML with it)")
    s.add_argument(
        "--output", help=f"file to write (the committed one: {SCHEMA_PATH}); default: print it"
    )
    s.set_defaults(func=schema)


def check_config(args) -> None:
    from storyrl.config import check_teacher_weights, load
    from storyrl.redact import redact_data

    cfg = load(*args.files)
    # Weights and rubric templates, as `snakemake -n` checks them.
    check_teacher_weights(cfg, source=", ".join(map(str, args.files)))
    print(json.dumps(redact_data(cfg.model_dump(mode="json")), indent=2, default=str))


def schema(args) -> None:
    from storyrl.atomic import atomic_path
    from storyrl.config import schema_text

    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as tmp:
            Path(tmp).write_text(schema_text(), encoding="utf-8")
    else:
        sys.stdout.write(schema_text())
