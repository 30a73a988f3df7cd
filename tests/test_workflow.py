"""The workflow itself: an end-to-end run on the test config, rerun decisions, the paper DAG."""

from pathlib import Path

import pytest
import yaml
from transformers import AutoModelForCausalLM

from conftest import ROOT, TEST_CONFIG, snakemake


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wf")
    snakemake(work, "--cores", "2")
    return work


def jobs_of_dry_run(work: Path, *configfiles: Path) -> set[str]:
    args = ["-n", "--quiet", "rules"]
    if configfiles:
        args += ["--configfile", *map(str, configfiles)]
    lines = snakemake(work, *args).stdout.splitlines()
    if not any(l.split() == ["job", "count"] for l in lines):
        return set()  # "Nothing to be done"
    start = next(i for i, l in enumerate(lines) if l.split() == ["job", "count"]) + 2
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("total"))
    return {l.split()[0] for l in lines[start:end]}


def test_end_to_end_builds_every_checkpoint_with_logs_and_benchmarks(finished):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    for label in cfg["pretrain"]["milestones"]:
        ckpt = finished / "results" / "pretrain" / "demo" / f"ckpt-{label}"
        assert AutoModelForCausalLM.from_pretrained(ckpt, local_files_only=True).config.n_embd == 32
    for rule in ("demo_corpus", "subset", "tokenizer", "tokens", "pretrain"):
        assert list((finished / "results" / "logs" / rule).glob("*.log")), rule
        assert list((finished / "results" / "benchmarks" / rule).glob("*.tsv")), rule
    assert (finished / "results" / "corpus" / "demo" / "raw" / "train_demo" / "childes.train").exists()


def test_nothing_to_do_after_a_run_and_only_the_changed_section_reruns(finished, tmp_path):
    assert jobs_of_dry_run(finished, TEST_CONFIG) == set()
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["pretrain"]["training"]["lr"] = 1e-3
    changed = tmp_path / "lr.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    assert jobs_of_dry_run(finished, changed) == {"pretrain_demo", "all"}
    cfg["tokenizer"]["vocab_size"] = 400
    changed.write_text(yaml.safe_dump(cfg))
    assert jobs_of_dry_run(finished, changed) == {"tokenizer", "tokens", "pretrain_demo", "all"}


def test_paper_config_plans_one_pretraining_run_with_27_milestones(tmp_path):
    out = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config" / "paper.yaml")).stdout
    line = next(l for l in out.splitlines() if l.strip().startswith("output:") and "ckpt-1M" in l)
    ckpts = [p.strip() for p in line.split(":", 1)[1].split(",") if "ckpt-" in p]
    assert len(ckpts) == 27
    assert ckpts[0].endswith("paper/ckpt-1M") and ckpts[-1].endswith("paper/ckpt-900M")
    assert "demo" not in out  # the default config is replaced, not merged


def test_a_bad_config_stops_the_workflow_naming_file_and_key(tmp_path):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["models"]["micro"]["n_head"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", "--configfile", str(bad), check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert f"invalid config in {bad}" in text and "models.micro" in text
