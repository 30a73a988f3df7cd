"""Generated blocks in the Markdown pages: numbers and text quoted from a run or a script.

A block is marked in the page itself, inline or over lines of its own:

    ... it takes <!-- generated: default-jobs -->37 jobs<!-- end generated --> ...

    <!-- generated: rl-table -->
    | run | first tenth | last tenth |
    ...
    <!-- end generated -->

`storyrl docs fill` rewrites what lies between the markers with its generator's text (a block
whose start marker ends its line gets the text on lines of its own); the markers stay, so the
page can be filled again. Generators are registered by name in `storyrl.docs.generators`; they
read the committed snapshots (`storyrl.docs.numbers`) and the project's own scripts, never a
results folder, so the pages are the same on every checkout.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from storyrl.analysis import AnalysisError

START = re.compile(r"<!-- generated: ([^ ]*) -->")
END = "<!-- end generated -->"
PAGES = ("README.md", "config/README.md", "docs/*.md")
"""The pages that may hold generated blocks, relative to the repository root."""


class DocsError(AnalysisError):
    """A page whose markers cannot be filled; the message names the file and line."""


@dataclass(frozen=True)
class Block:
    name: str
    line: int  # of the start marker, 1-based
    start: int  # offsets of the content between the markers
    end: int
    own_lines: bool  # the start marker ends its line: the content is on lines of its own


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def blocks(text: str, path) -> list[Block]:
    """The generated blocks of a page, in order; a start marker without its end, an end marker
    without its start, or a nested start is an error naming the file and line."""
    found, pos = [], 0
    while True:
        m = START.search(text, pos)
        end = text.find(END, pos)
        if m is None or (end != -1 and end < m.start()):
            if end != -1:
                raise DocsError(
                    f"{path}:{_line(text, end)}: '{END}' without a '<!-- generated: NAME -->' "
                    "before it"
                )
            return found
        close = text.find(END, m.end())
        nested = START.search(text, m.end())
        if close == -1 or (nested and nested.start() < close):
            raise DocsError(
                f"{path}:{_line(text, m.start())}: generated block '{m.group(1)}' has no "
                f"'{END}' after it"
            )
        found.append(
            Block(
                m.group(1),
                _line(text, m.start()),
                m.end(),
                close,
                text.startswith("\n", m.end()),
            )
        )
        pos = close + len(END)


def fill_text(text: str, path, generate) -> str:
    """`text` with every block's content replaced by `generate(name)`; an unknown name is an
    error naming the file and line (`generate` raises KeyError for it)."""
    out, pos = [], 0
    for b in blocks(text, path):
        try:
            content = generate(b.name)
        except KeyError:
            from storyrl.docs.generators import GENERATORS

            raise DocsError(
                f"{path}:{b.line}: unknown generated block '{b.name}' (known: "
                f"{', '.join(sorted(GENERATORS))})"
            ) from None
        content = content.strip("\n")
        out += [text[pos : b.start], f"\n{content}\n" if b.own_lines else content]
        pos = b.end
    return "".join(out) + text[pos:]


def pages(root) -> list[Path]:
    root = Path(root)
    return sorted({p for pattern in PAGES for p in root.glob(pattern) if p.is_file()})


def stale(root, generate=None) -> dict[Path, str]:
    """{page: its filled text} for every page whose generated blocks are not what their
    generators give now."""
    from storyrl.docs.generators import Generator

    generate = generate or Generator(root)
    out = {}
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        new = fill_text(text, page.relative_to(root), generate)
        if new != text:
            out[page] = new
    return out


def fill(root) -> list[Path]:
    """Rewrite the stale pages under `root`; the pages rewritten."""
    from storyrl.core.atomic import write_text

    changed = stale(root)
    for page, text in changed.items():
        write_text(page, text)
    return sorted(changed)
