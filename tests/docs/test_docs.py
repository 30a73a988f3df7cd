"""The README and docs/: the generated pages are fresh, every column is described, and every
relative link (file, and #anchor as GitHub makes them from headings) resolves."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT
from storyrl.core.schema_docs import undocumented
from storyrl.docs.cli import PAGES, page

PAGES_MD = [
    ROOT / "README.md",
    ROOT / "config" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
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
        "COLUMNS in storyrl/core/schema_docs.py, then: storyrl docs results --output docs/results.md"
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


GENERATED = re.compile(r"<!-- generated: [^ ]* -->.*?<!-- end generated -->", re.S)


def prose_and_tables(path: Path) -> tuple[list[str], list[list[str]]]:
    """A page's sentences outside code (a sentence spans lines) and its tables, each a list of
    body rows. Generated blocks are left out: they quote data, and two stories of the demo
    grammar may share a sentence."""
    text = GENERATED.sub("", FENCE.sub("", path.read_text(encoding="utf-8")))
    prose, tables, table = [], [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if table is None:
                table = []
                tables.append(table)
            if not set(line) <= set("|-: "):
                table.append(line)
        else:
            table = None
            prose.append(line)
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(prose))
    return [s.strip() for s in sentences], [t[1:] for t in tables]  # t[0]: the header row


def repeats(path: Path) -> list[str]:
    """A sentence said twice on one page, or a row twice in one table."""
    sentences, tables = prose_and_tables(path)
    long = [s for s in sentences if len(s) > 60]
    found = sorted({s for s in long if long.count(s) > 1})
    for rows in tables:
        found += sorted({r for r in rows if rows.count(r) > 1})
    return [f"{path.relative_to(ROOT)}: {s[:100]}" for s in found]


def test_no_page_says_a_sentence_or_a_table_row_twice():
    bad = [b for p in PAGES_MD for b in repeats(p)]
    assert not bad, "\n".join(bad)


# The report's captions (plain reStructuredText, shown inside report.zip) name a page and a
# section: `docs/stages.md, "Figures and tables"` or `README "Sharing results"`.
SECTION_REF = re.compile(r"\b(README(?:\.md)?|docs/[\w-]+\.md),? \"([^\"]+)\"")


def test_the_report_captions_name_sections_that_exist():
    refs = []
    for rst in sorted((ROOT / "workflow" / "report").glob("*.rst")):
        refs += SECTION_REF.findall(rst.read_text(encoding="utf-8"))
    assert refs
    bad = []
    for page_name, section in refs:
        page_path = ROOT / ("README.md" if page_name.startswith("README") else page_name)
        headings = page_path.read_text(encoding="utf-8") if page_path.exists() else ""
        if not re.search(rf"^#+ {re.escape(section)}\s*$", headings, re.M):
            bad.append(f"{page_name}: no section {section!r}")
    assert not bad, bad


# Code, docs and comments speak of the project as it is, not of the work that made it.
TRACKED = ("README.md", "Snakefile", "Makefile", "pyproject.toml")
TRACKED_DIRS = ("docs", "storyrl", "tests", "benchmarks", "workflow", "config", "profiles", "envs")
WORK_NUMBER = re.compile(r"\b(?:issues?|defects?)\s+#?\d+", re.I)


def test_no_file_names_an_issue_number():
    files = [ROOT / f for f in TRACKED] + [
        p
        for d in TRACKED_DIRS
        for p in sorted((ROOT / d).rglob("*"))
        if p.is_file() and p.suffix in {".py", ".md", ".smk", ".rst", ".yaml", ".yml", ".txt"}
    ]
    bad = [
        f"{p.relative_to(ROOT)}:{i}: {line.strip()[:100]}"
        for p in files
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if WORK_NUMBER.search(line)
    ]
    assert not bad, "\n".join(bad)


# Flags of the README's commands that name a file or folder the command writes (or, for
# --configfile, one the README asks the user to make).
WRITES = {"--output", "--out", "--report", "--local-dir", "--configfile"}


def written_paths(markdown: str) -> list[str]:
    import shlex

    found = []
    for block in re.findall(r"^```bash\n(.*?)^```", markdown, re.S | re.M):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            found += [w for flag, w in zip(words, words[1:]) if flag in WRITES]
    return found


def test_the_readmes_commands_leave_the_checkout_clean():
    """What the README's commands write lands where git ignores it (results/, ...), so
    `git status` stays clean after following the README."""
    paths = [p for p in written_paths((ROOT / "README.md").read_text()) if not p.startswith("<")]
    assert "my_paper.yaml" in paths and len(set(paths)) >= 5, paths
    tracked = subprocess.run(
        ["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(set(paths) - set(tracked) - set(ignored)) == []


def test_the_config_folders_readme_names_every_section():
    """config/README.md, the configuration page of the Snakemake workflow catalog, lists every
    top-level section of the config."""
    from storyrl.config import Config

    text = (ROOT / "config" / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Config.model_fields if f"| `{name}` |" not in text]
    assert missing == []


# Generated blocks: numbers the pages quote from a default run (docs/data/default_run.json) or
# from a script or plan, filled by `storyrl docs fill` (storyrl/docs/blocks.py).


def test_every_generated_block_is_what_its_generator_gives():
    from storyrl.docs.blocks import stale

    old = sorted(str(p.relative_to(ROOT)) for p in stale(ROOT))
    assert old == [], f"stale generated blocks in {old}: storyrl docs fill"


def test_the_pages_hold_the_generated_blocks_of_the_default_runs_numbers():
    from storyrl.docs.blocks import blocks, pages
    from storyrl.docs.generators import GENERATORS

    used = {b.name for p in pages(ROOT) for b in blocks(p.read_text(encoding="utf-8"), p)}
    # Every generator is used somewhere, so a number cannot drift out of its block unseen.
    assert used == set(GENERATORS)


def test_a_block_is_filled_between_its_markers_inline_or_on_lines_of_its_own():
    from storyrl.docs.blocks import fill_text

    text = (
        "a <!-- generated: x -->old<!-- end generated --> b\n"
        "<!-- generated: t -->\n| old |\n<!-- end generated -->\ntail\n"
    )
    got = fill_text(text, "p.md", {"x": "1.5", "t": "| a |\n|---|\n"}.__getitem__)
    assert got == (
        "a <!-- generated: x -->1.5<!-- end generated --> b\n"
        "<!-- generated: t -->\n| a |\n|---|\n<!-- end generated -->\ntail\n"
    )
    assert fill_text(got, "p.md", {"x": "1.5", "t": "| a |\n|---|"}.__getitem__) == got


def test_a_block_without_its_end_or_with_an_unknown_name_is_named_with_file_and_line():
    from storyrl.docs.blocks import DocsError, fill_text
    from storyrl.docs.generators import Generator

    generate = Generator(ROOT)
    cases = {
        "one\ntwo <!-- generated: rl-table -->\n| x |\n": "p.md:2: generated block 'rl-table' "
        "has no '<!-- end generated -->'",
        "<!-- generated: a -->\n<!-- generated: b -->x<!-- end generated -->\n": "p.md:1: "
        "generated block 'a' has no",
        "x\n\n<!-- end generated -->\n": "p.md:3: '<!-- end generated -->' without",
        "\n<!-- generated: rl-tabel -->x<!-- end generated -->": "p.md:2: unknown generated "
        "block 'rl-tabel' (known: ",
    }
    for text, message in cases.items():
        with pytest.raises(DocsError) as err:
            fill_text(text, "p.md", generate)
        assert str(err.value).startswith(message), str(err.value)


def test_the_fill_command_rewrites_a_stale_block_and_check_names_the_page(tmp_path):
    import shutil

    for d in ("docs", "config", "benchmarks"):
        shutil.copytree(ROOT / d, tmp_path / d)
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    readme = tmp_path / "README.md"
    fresh = readme.read_text(encoding="utf-8")
    stale = re.sub(
        r"(<!-- generated: rl-table -->).*?(<!-- end generated -->)",
        r"\1\n| run | first tenth | last tenth |\n|---|---|---|\n| x | 0.769 | 0.731 |\n\2",
        fresh,
        flags=re.S,
    )
    assert stale != fresh
    readme.write_text(stale, encoding="utf-8")

    def docs(*args):
        cmd = [sys.executable, "-m", "storyrl.cli", "docs", "fill", "--root", str(tmp_path)]
        return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=tmp_path)

    check = docs("--check")
    assert check.returncode == 2 and str(readme) in check.stderr, check.stderr
    assert readme.read_text(encoding="utf-8") == stale
    assert docs().returncode == 0
    assert readme.read_text(encoding="utf-8") == fresh
    assert docs("--check").returncode == 0


def test_the_snapshot_reads_a_results_folder_through_the_analysis_readers(tmp_path):
    import pyarrow.parquet as pq

    from analysis_synth import write_results
    from storyrl.analysis import AnalysisError
    from storyrl.docs.numbers import snapshot

    write_results(tmp_path, n_steps=20, batch=6, n_stories=8, runs=[(20_000_000, 42)])
    with pytest.raises(AnalysisError, match="config.yaml"):
        snapshot(tmp_path)
    (tmp_path / "config.yaml").write_text("analysis: {stories_per_group: 1}\n")
    got = snapshot(tmp_path)
    (run,) = got["rl"]
    steps = pq.read_table(next(tmp_path.glob("rl/*/steps.parquet"))).to_pandas()
    score = steps.sort_values("step").teacher_score_mean
    # A tenth of 20 steps: 2.
    assert run["steps"] == 20 and run["stories_per_step"] == 6
    assert run["first_tenth"] == round(score.iloc[:2].mean(), 4)
    assert run["last_tenth"] == round(score.iloc[-2:].mean(), 4)
    assert [s["group"] for s in got["stories"]] == ["first", "last", "best"]
    assert [z["checkpoint"] for z in got["zero_shot"]][:3] == ["1M", "2M", "5M"]
