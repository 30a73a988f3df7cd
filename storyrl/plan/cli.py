"""`storyrl check-config`, `record-config` and `schema`: a config checked as the workflow plans it
(its sections and teachers), recorded beside the results, and its JSON schema."""

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    from storyrl.config import SCHEMA_PATH

    s = sub.add_parser("check-config", help="validate config YAML file(s) and print the result")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=check_config)

    s = sub.add_parser(
        "record-config",
        help="write a run's validated config as YAML beside its results (what `storyrl analysis` "
        "and `storyrl share` read)",
    )
    s.add_argument("--config-json", required=True, help="the config as JSON (what rules pass)")
    s.add_argument("--output", required=True, help="e.g. results/config.yaml")
    s.set_defaults(func=record_config)

    s = sub.add_parser("schema", help="write the config's JSON schema (editors check YAML with it)")
    s.add_argument(
        "--output", help=f"file to write (the committed one: {SCHEMA_PATH}); default: print it"
    )
    s.set_defaults(func=schema)


def check_config(args) -> None:
    from storyrl.config import load
    from storyrl.config.data_paths import check_data_paths
    from storyrl.core.redact import redact_data
    from storyrl.stories.checks import check_teacher_weights

    cfg = load(*args.files)
    # Weights, rubric templates and data paths, as `snakemake -n` checks them.
    check_teacher_weights(cfg, source=", ".join(map(str, args.files)))
    check_data_paths(cfg, source=", ".join(map(str, args.files)))
    print(json.dumps(redact_data(cfg.model_dump(mode="json")), indent=2, default=str))


def record_config(args) -> None:
    from storyrl.config import record_text, validate
    from storyrl.core.atomic import write_text
    from storyrl.core.redact import redact_data

    cfg = validate(json.loads(args.config_json), source="--config-json")
    # A record others may read (share copies it): no URL credentials.
    write_text(args.output, record_text(redact_data(cfg.model_dump(mode="json"))))


def schema(args) -> None:
    from storyrl.config import schema_text
    from storyrl.core.atomic import atomic_path

    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as tmp:
            Path(tmp).write_text(schema_text(), encoding="utf-8")
    else:
        sys.stdout.write(schema_text())
