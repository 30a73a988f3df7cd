"""The analysis registry is the one list of tables and figures: a target registered there (and
nowhere else) is built by the CLI and `analysis all` and planned by the workflow's rules."""

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from analysis_synth import write_results
from storyrl.analysis.registry import REGISTRY, Target, buildable, names, register
from storyrl.analysis.targets import build_all
from storyrl.cli import main
from storyrl.core import layout

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "tests" / "config" / "test.yaml"

# A test-only table: the run ids of the steps it is given, written by the project's writer.
EXTRA = textwrap.dedent("""
    from storyrl.analysis.registry import Target, register

    def extra_runs(steps, output, cfg):
        import pandas as pd
        from storyrl.analysis.tables import write_table
        return write_table(pd.DataFrame({"run_id": sorted(set(steps.run_id))}), output)

    register(Target("extra_runs", "table", ("steps",), "{module}:extra_runs", "test only"))
""")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    info = write_results(root, n_steps=12, batch=6, n_stories=8)
    return root, sorted(info["runs"])


@pytest.fixture
def extra(tmp_path, monkeypatch):
    """EXTRA registered in this process, as an importable module (removed afterwards)."""
    (tmp_path / "extra_target.py").write_text(EXTRA.replace("{module}", "extra_target"))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(REGISTRY)
    __import__("extra_target")
    yield REGISTRY["table", "extra_runs"]
    REGISTRY.clear()
    REGISTRY.update(before)
    sys.modules.pop("extra_target", None)


def test_an_extra_registration_is_built_by_the_cli_and_by_analysis_all(results, extra, tmp_path):
    root, runs = results
    steps = [str(p) for p in layout.discover(root).steps]
    out = tmp_path / "one" / "x.csv"
    assert main(["analysis", "table", "extra_runs", "--steps", *steps, "--output", str(out)]) == 0
    assert list(pd.read_csv(out).run_id) == runs
    res = build_all(root, tmp_path / "all", strict=True)
    assert set(extra.paths(tmp_path / "all")) <= set(res["written"])
    assert list(pd.read_csv(layout.table_path(tmp_path / "all", "extra_runs")).run_id) == runs


def _dry_run(workdir: Path, pythonpath: str) -> str:
    env = dict(
        os.environ,
        PYTHONPATH=pythonpath,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    cmd = [
        str(Path(sys.executable).with_name("snakemake")),
        "-n",
        "-p",
        "--cores",
        "1",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(TEST_CONFIG),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_an_extra_registration_is_planned_by_the_workflow(tmp_path):
    # Registered when snakemake's Python starts (sitecustomize on PYTHONPATH): no project file
    # other than the registry's users is involved, and none is touched.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(EXTRA.replace("{module}", "sitecustomize"))
    base = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    plain = _dry_run(tmp_path / "a", base)
    extended = _dry_run(tmp_path / "b", os.pathsep.join([str(site), base]))
    tables = re.compile(r"storyrl\.cli analysis table (\w+) --output (\S+) ")
    assert "extra_runs" not in plain
    assert ("extra_runs", "results/tables/extra_runs.csv") in tables.findall(extended)
    assert "extra_runs --output results/tables/extra_runs.csv --steps results/rl/" in extended
    assert (
        len(tables.findall(extended)) == len(tables.findall(plain)) + 1 == len(names("table")) + 1
    )
    for fmt in layout.TABLE_FORMATS:
        assert f"results/tables/extra_runs{fmt}" in extended


def test_every_target_is_buildable_from_its_inputs_and_a_cli_choice(capsys):
    with pytest.raises(SystemExit):
        main(["analysis", "figure", "--help"])
    usage = capsys.readouterr().out
    for name in names("figure"):
        assert name in usage
    for t in REGISTRY.values():
        assert t.name in buildable(t.kind, t.inputs), t
        assert callable(t.builder()), t
    with pytest.raises(ValueError, match="registered twice"):
        register(Target("babylm", "figure", ("eval",), "x:y", "again"))
    with pytest.raises(ValueError, match=r"needs \['steps'\], not in its inputs"):
        Target("x", "figure", ("rollouts",), "x:y", "", needs=("steps",))


def test_the_registry_is_the_only_list_of_target_names():
    """No other module of the analysis and no rule spells a target's name: they read it."""
    # 'stories' is also the data's word for stories (a steps column, the `source` of a CI).
    registered = {n for _, n in REGISTRY} - {"stories"}
    found = []
    for p in sorted((ROOT / "storyrl" / "analysis").glob("*.py")):
        if p.name != "registry.py":
            found += [
                (p.name, node.value)
                for node in ast.walk(ast.parse(p.read_text()))
                if isinstance(node, ast.Constant) and node.value in registered
            ]
    for p in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").rglob("*.smk"))]:
        found += [
            (p.name, m) for m in re.findall(r"[\"'](\w+)[\"']", p.read_text()) if m in registered
        ]
    assert found == []
