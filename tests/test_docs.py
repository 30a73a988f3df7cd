"""The README and docs/: the generated pages are fresh, every column is described, and every
relative link (file, and #anchor as GitHub makes them from headings) resolves."""

import re
import subprocess
import sys
from pathlib import Path

from helpers import ROOT
from storyrl.docs_cli import PAGES, page
from storyrl.schema_docs import undocumented

PAGES_MD = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def test_generated_pages_are_fresh():
    for name, (path, _) in PAGES.items():
        committed = (ROOT / path).read_text(encoding="utf-8")
        assert committed == page(name), f"{path} is stale: storyrl docs {name} --output {path}"


def test_the_docs_command_writes_the_committed_page(tmp_path):
    out = tmp_path / "configuration.md"
    subprocess.run(
        [sys.executable, "-m", "storyrl.cli", "docs", "config", "--output", str(out)],
        check=True,
        cwd=ROOT,
    )
    assert out.read_text(encoding="utf-8") == (ROOT / PAGES["config"][0]).read_text()


def test_every_column_of_every_table_is_described():
    missing = undocumented()
    assert missing == {}, (
        f"columns without a unit and meaning (or meanings of columns gone): {missing}; edit "
        "COLUMNS in storyrl/schema_docs.py, then: storyrl docs results --output docs/results.md"
    )


def test_the_configuration_page_names_every_key():
    """A key deep in a section (through a map, a list and an optional section) is listed."""
    text = (ROOT / PAGES["config"][0]).read_text()
    for key in (
        "`corpora.<name>.fraction`",
        "`rl_runs[].overrides`",
        "`rl.ppo.cliprange`",
        "`teacher.vllm.gpu_memory_gib`",
        "`analysis.bootstrap`",
    ):
        assert key in text, key


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped (not - or _), spaces to hyphens,
    a repeated id suffixed -1, -2..."""
    seen: dict[str, int] = {}
    out = set()
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    return LINK.findall(text)


def broken(path: Path) -> list[str]:
    bad = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(f"{path.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{path.name}: {target} (no heading #{anchor})")
    return bad


def test_every_relative_link_resolves():
    bad = [b for p in PAGES_MD for b in broken(p)]
    assert not bad, "\n".join(bad)
    assert sum(len(links(p)) for p in PAGES_MD) > 20


def test_the_link_check_catches_what_it_should(tmp_path):
    (tmp_path / "a.md").write_text(
        "# Top\n## Run `storyrl share` (HF)\n## Top\n"
        "[ok](#top-1) [ok](#run-storyrl-share-hf) [ok](b.md#x_y) [web](https://x.y/z)\n"
        "[gone](c.md) [bad](#nope) [bad](b.md#y)\n```\n[in code](nope.md)\n```\n"
    )
    (tmp_path / "b.md").write_text("### X_Y\n")
    got = broken(tmp_path / "a.md")
    assert got == [
        "a.md: c.md (no such file)",
        "a.md: #nope (no heading #nope)",
        "a.md: b.md#y (no heading #y)",
    ]
