"""What can be checked when the workflow plans is checked then: a job that
stops at its start has already cost its finished outputs, which Snakemake removes first."""

import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, TEST_CONFIG, snakemake


def config_with(tmp_path, **teacher):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["teacher"] = {**cfg.get("teacher", {}), **teacher}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def check_config(path):
    return subprocess.run(
        [sys.executable, "-m", "storyrl.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


@pytest.fixture
def no_story(tmp_path):
    t = tmp_path / "rubric.txt"
    t.write_text("Rate this: {prompt}\nScores =")  # no {story}
    return t


def test_check_config_refuses_a_missing_template(tmp_path):
    out = check_config(config_with(tmp_path, template=str(tmp_path / "nope.txt")))
    assert out.returncode == 2
    assert "teacher.template: '" in out.stderr and "nope.txt': no such file" in out.stderr


def test_check_config_refuses_a_template_without_a_placeholder(tmp_path, no_story):
    out = check_config(config_with(tmp_path, template=str(no_story)))
    assert out.returncode == 2
    assert f"teacher.template: '{no_story}'" in out.stderr
    assert "nor the placeholder(s) {story}" in out.stderr


def test_an_rl_runs_template_is_checked_too(tmp_path, no_story):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["rl_runs"][0]["overrides"] = {"teacher": {"template": str(no_story)}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = check_config(path)
    assert out.returncode == 2 and "rl_runs (" in out.stderr and "nor the placeholder" in out.stderr


def test_planning_refuses_a_bad_template(tmp_path, no_story):
    out = snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(config_with(tmp_path, template=str(no_story))),
        check=False,
    )
    assert out.returncode != 0
    assert "nor the placeholder(s) {story}" in out.stdout + out.stderr


def tokens_meta(folder, made_with):
    """A tokenized demo corpus of 50,000 tokens (≈ 37.8K words of training at this config):
    the test config's 60K milestone is past its end."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "n_tokens": 50_000,
        "tokens_per_word": 1.3,
        "group_tokens": None,
        "made_with": made_with,
    }
    (folder / "tokens.json").write_text(json.dumps(meta))


def current(cfg):
    from storyrl.core.schemas import config_hash

    return {
        "corpus": config_hash(cfg.corpora["demo"].model_dump(mode="json")),
        "tokenizer": config_hash(cfg.tokenizer.model_dump(mode="json")),
    }


def test_planning_refuses_a_milestone_past_a_current_stream(tmp_path):
    """Before: a warning, then the job removed the run's published checkpoints and stopped."""
    from storyrl.config import load

    tokens_meta(tmp_path / "results" / "corpus" / "demo", current(load(TEST_CONFIG)))
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "pretraining run demo with the token stream of results/corpus/demo/tokens.json" in text
    assert "60K words is past the end of the run" in text


def test_a_stream_of_other_settings_only_warns(tmp_path):
    """It will be rebuilt (the corpus section changed), and the new one may reach the milestone."""
    tokens_meta(tmp_path / "results" / "corpus" / "demo", {"corpus": "other", "tokenizer": "x"})
    out = snakemake(tmp_path, "-n", check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "60K words is past the end of the run" in out.stdout + out.stderr


def test_publishing_an_identical_checkpoint_leaves_it_untouched(tmp_path):
    import os

    from storyrl.pretrain.export import publish

    work = tmp_path / "work"
    ckpt = work / "milestones" / "ckpt-10K"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"weights")
    (ckpt / "config.json").write_text("{}")
    (work / "log.parquet").write_bytes(b"log")
    out = {10_000: tmp_path / "out" / "ckpt-10K"}
    publish(work, out, tmp_path / "out" / "log.parquet")
    before = {
        p: os.stat(p)
        for p in [out[10_000], *out[10_000].iterdir(), tmp_path / "out" / "log.parquet"]
    }
    publish(work, out, tmp_path / "out" / "log.parquet")
    for p, st in before.items():
        now = os.stat(p)
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), p
    (ckpt / "model.safetensors").unlink()  # other weights: published again
    (ckpt / "model.safetensors").write_bytes(b"other")
    publish(work, out, None)
    assert (out[10_000] / "model.safetensors").read_bytes() == b"other"


def test_the_template_hash_error_says_our_rubric_needs_no_hash(tmp_path):
    # The paper config pins the authors' file by its sha256; pointing `template` at our rubric
    # alone fails the same way, so the message must say to unset the hash too.
    ours = ROOT / "config" / "prompts" / "teacher_rubric.txt"
    out = check_config(config_with(tmp_path, template=str(ours), template_sha256="0" * 64))
    assert out.returncode == 2
    assert "has sha256" in out.stderr
    assert "config/prompts/teacher_rubric.txt with `teacher.template_sha256: null`" in out.stderr


def config_with_data(tmp_path, corpus=None, data_path=None):
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    if corpus is not None:
        cfg["corpora"]["demo"] = corpus
    if data_path is not None:
        cfg["zero_shot"] = {**cfg.get("zero_shot", {}), "data_path": str(data_path)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hf_without_split(folder):
    folder.mkdir()
    (folder / "dataset_dict.json").write_text('{"splits": ["validation"]}')
    return {"format": "hf", "path": str(folder)}


def _babylm_without_train_files(folder):
    (folder / "train_100M").mkdir(parents=True)
    (folder / "train_100M" / "README.md").write_text("the *.train files are elsewhere")
    return {"format": "babylm", "path": str(folder)}


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda f: {"format": "hf", "path": "/path/to/babylm-100M"}, "no such file or folder"),
        (lambda f: f.mkdir() or {"format": "hf", "path": str(f)}, "no dataset_dict.json"),
        (_hf_without_split, "the saved DatasetDict has no split 'train' (has validation)"),
        (_babylm_without_train_files, "no *.train files here nor in a train_*/ folder"),
    ],
    ids=["placeholder", "empty-folder", "no-split", "no-train-files"],
)
def test_check_config_refuses_a_corpus_no_job_could_read(tmp_path, make, why):
    corpus = make(tmp_path / "corpus")
    out = check_config(config_with_data(tmp_path, corpus=corpus))
    assert out.returncode == 2, out.stderr
    assert f"corpora.demo.path: '{corpus['path']}' ({corpus['format']}): {why}" in out.stderr


def test_check_config_takes_a_saved_dataset_and_a_babylm_folder(tmp_path):
    import datasets

    saved = tmp_path / "hf"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a b"]})}).save_to_disk(
        str(saved)
    )
    assert (
        check_config(config_with_data(tmp_path, {"format": "hf", "path": str(saved)})).returncode
        == 0
    )
    babylm = tmp_path / "babylm" / "train_10M"
    babylm.mkdir(parents=True)
    (babylm / "childes.train").write_text("a b\n")
    corpus = {"format": "babylm", "path": str(babylm.parent)}
    assert check_config(config_with_data(tmp_path, corpus)).returncode == 0


def test_check_config_refuses_evaluation_data_without_its_task_folders(tmp_path):
    data = tmp_path / "evaluation_data"
    (data / "fast_eval" / "blimp_fast").mkdir(parents=True)
    out = check_config(config_with_data(tmp_path, data_path=data))
    assert out.returncode == 2
    line = next(l for l in out.stderr.splitlines() if "zero_shot.data_path" in l)
    assert f"zero_shot.data_path: '{data}': lacks full_eval/blimp_filtered" in line
    assert "fast_eval/blimp_fast," not in line and "fast_eval/ewok_fast" in line
    out = check_config(config_with_data(tmp_path, data_path=tmp_path / "nope"))
    assert f"zero_shot.data_path: '{tmp_path / 'nope'}': no such folder" in out.stderr


def test_planning_refuses_a_placeholder_corpus_path(tmp_path):
    corpus = {"format": "hf", "path": "/path/to/babylm-100M"}
    out = snakemake(
        tmp_path, "-n", "--configfile", str(config_with_data(tmp_path, corpus)), check=False
    )
    assert out.returncode != 0
    assert "corpora.demo.path: '/path/to/babylm-100M' (hf): no such file" in out.stdout + out.stderr
