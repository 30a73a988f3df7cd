"""`storyrl docs config|results|run|fill`: the generated pages of docs/ and the generated blocks
of the README and docs/ (tests keep the committed ones fresh)."""

import sys
from pathlib import Path

PAGES = {
    "config": ("docs/configuration.md", "every config key, from the typed config sections"),
    "results": ("docs/results.md", "every file the workflow writes, from storyrl/core/schemas.py"),
}
ROOT = Path(__file__).resolve().parents[2]
"""The checkout whose pages `fill` rewrites (an editable install: the repository)."""


def page(name: str) -> str:
    if name == "config":
        from storyrl.config.reference import reference_text

        return reference_text()
    from storyrl.core.schema_docs import results_page

    return results_page()


def add_parser(sub) -> None:
    d = sub.add_parser("docs", help="write a generated page of docs/, or the docs' numbers")
    pages = d.add_subparsers(dest="docs_command", required=True)
    for name, (path, what) in PAGES.items():
        p = pages.add_parser(name, help=f"{path}: {what}")
        p.add_argument(
            "--output", help=f"file to write (the committed one: {path}); default: print it"
        )
        p.set_defaults(func=docs_command, page=name)
    r = pages.add_parser(
        "run",
        help="the numbers the docs quote, from a finished default run's results (a JSON "
        "snapshot), and the figures they show",
    )
    r.add_argument("--results", default="results", help="the run's results folder")
    r.add_argument(
        "--output",
        default="docs/data/default_run.json",
        help="snapshot to write (the committed one: docs/data/default_run.json)",
    )
    r.add_argument(
        "--figures-root",
        default=".",
        help="where the docs' figures go (docs/before_after.png ... under it; default: here)",
    )
    r.set_defaults(func=run_command)
    f = pages.add_parser(
        "fill",
        help="rewrite the generated blocks (between <!-- generated: NAME --> and <!-- end "
        "generated -->) of README.md and "
        "docs/*.md from the committed snapshots",
    )
    f.add_argument("--root", default=None, help="the checkout (default: the one storyrl runs from)")
    f.add_argument(
        "--check", action="store_true", help="only name the stale pages (exit status 2 if any)"
    )
    f.set_defaults(func=fill_command)


def docs_command(args) -> None:
    from storyrl.core.atomic import atomic_path

    text = page(args.page)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def run_command(args) -> None:
    from storyrl.docs.numbers import write

    for path in write(args.results, args.output, figures_root=args.figures_root):
        print(f"wrote {path}")


def fill_command(args) -> None:
    from storyrl.config.commands import Stop
    from storyrl.docs.blocks import fill, stale

    root = args.root or ROOT
    if args.check:
        old = sorted(stale(root))
        if old:
            raise Stop(
                "stale generated blocks in: "
                + ", ".join(map(str, old))
                + "; run: storyrl docs fill"
            )
        return
    for path in fill(root):
        print(f"filled {path}")
