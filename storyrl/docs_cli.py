"""`storyrl docs config|results`: the generated pages of docs/ (tests keep the committed ones
fresh)."""

import sys
from pathlib import Path

PAGES = {
    "config": ("docs/configuration.md", "every config key, from the typed config sections"),
    "results": ("docs/results.md", "every file the workflow writes, from storyrl/schemas.py"),
}


def page(name: str) -> str:
    if name == "config":
        from storyrl.config.reference import reference_text

        return reference_text()
    from storyrl.schema_docs import results_page

    return results_page()


def add_parser(sub) -> None:
    d = sub.add_parser("docs", help="write a generated page of docs/")
    d.add_argument(
        "page", choices=list(PAGES), help="; ".join(f"{k}: {v[1]}" for k, v in PAGES.items())
    )
    d.add_argument(
        "--output", help="file to write (the committed one: docs/<page>.md); default: print it"
    )
    d.set_defaults(func=docs_command)


def docs_command(args) -> None:
    from storyrl.atomic import atomic_path

    text = page(args.page)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
