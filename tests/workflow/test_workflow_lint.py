"""`snakemake --lint` finds nothing in the workflow, with the default config and with the
paper's (its rules differ: GPU placement, no demo data). The Snakemake workflow catalog shows
the lint's output next to the workflow."""

import pytest

from helpers import ROOT, paper_weights, snakemake


@pytest.mark.parametrize("paper", [False, True], ids=["default", "paper"])
def test_snakemake_lint_finds_nothing(tmp_path, paper):
    configs = ["--configfile", str(ROOT / "config" / "config.yaml")]
    if paper:
        configs = [
            "--configfile",
            str(ROOT / "config" / "paper.yaml"),
            str(paper_weights(tmp_path)),
        ]
    out = snakemake(tmp_path, "--lint", *configs, check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "Lints for" not in text, text[-4000:]
