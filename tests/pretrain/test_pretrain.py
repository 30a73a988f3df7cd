"""Pretraining: the step plan, checkpoints that load offline, and resume after SIGKILL/SIGTERM."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers import ROOT, TEST_CONFIG, pretrain_args
from storyrl.config import ConfigError, PretrainJob, TrainingConfig, load
from storyrl.core.checkpoints import tokenizer_fingerprint
from storyrl.core.schemas import read_metadata
from storyrl.pretrain.train import plan_run
from tiny_jobs import MODEL, TRAINING

MILESTONES = [5_000, 20_000, 40_000]


def test_plan_converts_words_to_steps_with_the_measured_ratio():
    t = TrainingConfig(batch_size=4, epochs=2)
    plan = plan_run(
        n_blocks=1000, block=100, tokens_per_word=1.25, training=t, milestones=[400, 4000, 100_000]
    )
    assert plan.total_steps == 500 and plan.tokens_per_step == 400
    # 400 words = 500 tokens -> step 2 (ceil); 4000 words = 5000 tokens -> step 13 (ceil 12.5)
    assert plan.milestone_steps == {400: 2, 4000: 13, 100_000: 313}
    assert plan.words_at(13) == 4160


def test_plan_rejects_a_milestone_past_the_run_even_by_one_percent():
    t = TrainingConfig(batch_size=4, epochs=1)
    plan = plan_run(1000, 100, 1.0, t, [100_000])  # run = 100,000 words: the last step is fine
    assert plan.milestone_steps == {100_000: 250}
    # A milestone the run never reaches would be a mislabelled checkpoint: refused, however close.
    with pytest.raises(ConfigError, match="pretrain.milestones: 101K words is past the end"):
        plan_run(1000, 100, 1.0, t, [101_000])
    with pytest.raises(ConfigError, match="same step"):
        plan_run(1000, 100, 1.0, t, [100, 200])


@pytest.mark.parametrize("ratio", [1.0, 1.2345678, 1.3333333333, 1.41, 2.0726932023778755])
@pytest.mark.parametrize("batch,block", [(8, 32), (256, 512)])
def test_milestone_step_is_the_first_whose_tokens_reach_ceil_words_times_ratio(ratio, batch, block):
    """The authors' WordMilestoneCB: save after the first step with steps x batch x block >=
    ceil(words x ratio); checked against a plain search, at the step and one before."""
    words = [1_000, 7_777, 20_000, 123_457, 1_000_000, 9_999_999]
    if batch * block > 10_000:  # the paper's 131,072 tokens a step: milestones in millions
        words = [w * 1000 for w in words[:-1]] + [900_000_000]
    plan = plan_run(10**7, block, ratio, TrainingConfig(batch_size=batch, epochs=1), words)
    for w, step in plan.milestone_steps.items():
        need = math.ceil(w * ratio)
        assert step * batch * block >= need > (step - 1) * batch * block, (w, step)


def _authors_blocks(words: float, rows: int, ratio: float, block: int) -> int:
    """Blocks of the authors' stream over the 90% subset: every row's tokens and its </s>,
    less the </s> each 1,000-row group pops, less each group's tail (half a block on average)."""
    sub_rows, groups = int(0.9 * rows), math.ceil(int(0.9 * rows) / 1000)
    tokens = ratio * 0.9 * words + sub_rows - groups
    return math.floor((tokens - groups * (block - 1) / 2) / block)


def test_the_paper_plan_reaches_1000M_on_the_2023_corpus():
    """docs/paper.md, "Does the run reach 1000M?": nilq/babylm-100M's train split has about
    10.6M rows; the counter adds every block token, </s> included, against a ratio measured
    without them, so 11 epochs count 9.9 x words + 7.36 x rows / ratio words: past 1000M for any
    ratio of 1.1-1.6 once the split holds 97M words or more (it is sold as 100M)."""
    cfg = load(ROOT / "config" / "paper.yaml")
    training, block = cfg.pretrain.training, cfg.models["gpt2-small"].n_positions
    assert training.epochs == 11 and training.batch_size == 256 and block == 512
    assert cfg.pretrain.milestones[-2:] == [900_000_000, 1_000_000_000]
    for words in (97e6, 98e6, 100e6):
        for rows in (10_550_000, 10_650_000):  # the dataset viewer's 10.6M, rounded
            for ratio in (1.1, 1.3, 1.6):
                n_blocks = _authors_blocks(words, rows, ratio, block)
                plan = plan_run(n_blocks, block, ratio, training, cfg.pretrain.milestones)
                assert plan.milestone_steps[1_000_000_000] <= plan.total_steps
    # The separators carry it: the text alone, 11 x 90M = 990M words, ends short of 1000M.
    with pytest.raises(ConfigError, match="1000M words is past the end"):
        plan_run(math.floor(90e6 * 1.3) // block, block, 1.3, training, cfg.pretrain.milestones)
    # ... and so does a corpus much smaller than its 100M: at 94M words 1000M is not reached.
    with pytest.raises(ConfigError, match="1000M words is past the end"):
        plan_run(
            _authors_blocks(94e6, 10_600_000, 1.3, block),
            block,
            1.3,
            training,
            cfg.pretrain.milestones,
        )


def _cmd(prepared: Path, work: Path, out: Path, milestones=MILESTONES) -> list[str]:
    job = PretrainJob(run_id="t", model=MODEL, training=TRAINING, milestones=milestones, seed=7)
    return [sys.executable, *pretrain_args(job, prepared, work, out)]


def _run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def reference(demo_prepared, tmp_path_factory):
    """One uninterrupted run."""
    root = tmp_path_factory.mktemp("ref")
    _run(_cmd(demo_prepared, root / "work", root / "out"))
    return root / "out"


def _weights(ckpt: Path) -> dict:
    return load_file(ckpt / "model.safetensors")


def _assert_same(a: Path, b: Path):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_milestone_checkpoints_load_offline_and_record_words(reference):
    for w, label in zip(MILESTONES, ("5K", "20K", "40K")):
        ckpt = reference / f"ckpt-{label}"
        info = json.loads((ckpt / "storyrl_checkpoint.json").read_text())
        assert info["milestone_words"] == w and info["words_seen"] >= w
        assert not (ckpt / "optimizer.pt").exists()
    model = AutoModelForCausalLM.from_pretrained(reference / "ckpt-40K", local_files_only=True)
    tok = AutoTokenizer.from_pretrained(reference / "ckpt-40K", local_files_only=True)
    # Each milestone names its tokenizer, which every load checks (storyrl.core.checkpoints).
    assert info["tokenizer_sha256"] == tokenizer_fingerprint(tok)
    assert model.config.n_layer == 1 and model.config.eos_token_id == tok.eos_token_id
    assert tok("Once upon a time")["input_ids"][0] != tok.bos_token_id  # no BOS prepended
    log = pd.read_parquet(reference / "log.parquet")
    assert log["step"].is_monotonic_increasing and (log["tokens_per_s"].dropna() > 0).all()
    assert (log["words_seen"].diff().dropna() > 0).all()
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]
    # The loss figure marks the milestones from the log alone.
    assert read_metadata(reference / "log.parquet")["milestones"] == list(MILESTONES)


def _wait_for_state(work: Path, proc, min_step: int, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [
            int(d.name.split("-")[1])
            for d in work.glob("checkpoint-*")
            if (d / "trainer_state.json").exists()
        ]
        if steps and max(steps) >= min_step:
            return max(steps)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.2)
    raise AssertionError("no resume state appeared")


def test_resume_after_sigkill_gives_the_same_checkpoints(demo_prepared, reference, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    proc = subprocess.Popen(_cmd(demo_prepared, work, out), stderr=subprocess.PIPE, text=True)
    step = _wait_for_state(work, proc, min_step=30)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # nothing published by the killed run
    log = _run(_cmd(demo_prepared, work, out)).stderr
    assert f"resume from {work}/checkpoint-" in log, log[-2000:]
    for label in ("5K", "20K", "40K"):
        _assert_same(reference / f"ckpt-{label}", out / f"ckpt-{label}")
    assert step >= 30


def test_sigterm_saves_state_and_exits_143_then_resumes(demo_prepared, reference, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    proc = subprocess.Popen(_cmd(demo_prepared, work, out), stderr=subprocess.PIPE, text=True)
    _wait_for_state(work, proc, min_step=15)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err
    _run(_cmd(demo_prepared, work, out))
    _assert_same(reference / "ckpt-40K", out / "ckpt-40K")


def test_changed_settings_do_not_resume_a_stale_state(demo_prepared, reference, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    _run(_cmd(demo_prepared, work, out, milestones=[5_000]))
    err = _run(_cmd(demo_prepared, work, out)).stderr
    assert "settings changed" in err and "resume from scratch" in err
    _assert_same(reference / "ckpt-40K", out / "ckpt-40K")


def test_plan_from_the_streams_metadata_counts_the_blocks_as_training_does(tmp_path):
    """The planning-time check reads tokens.json alone; its block count is the dataset's."""
    import json

    import numpy as np

    from storyrl.config import TrainingConfig
    from storyrl.pretrain.schedule import count_blocks, plan_from_meta
    from storyrl.pretrain.train import Blocks

    groups = [700, 129, 128, 1000, 5]
    tokens = np.zeros(sum(groups), dtype=np.uint16)
    for g in (groups, None):
        assert count_blocks(len(tokens), 128, g) == len(Blocks(tokens, 128, g))
    meta = tmp_path / "tokens.json"
    meta.write_text(
        json.dumps({"n_tokens": len(tokens), "group_tokens": groups, "tokens_per_word": 1.25})
    )
    training = TrainingConfig(batch_size=2, micro_batch_size=1, epochs=1)
    plan = plan_from_meta(meta, 128, training, [100, 300])
    assert plan.total_steps == len(Blocks(tokens, 128, groups)) // 2
    with pytest.raises(ConfigError, match="past the end of the run"):
        plan_from_meta(meta, 128, training, [10_000])


def test_dry_run_warns_of_a_milestone_past_the_tokenized_corpus(tmp_path):
    """A rerun's `snakemake -n` says what the pretraining job would stop with."""
    import json
    import subprocess
    import sys

    import yaml

    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    corpus = next(iter(cfg["corpora"]))
    folder = tmp_path / "results" / "corpus" / corpus
    folder.mkdir(parents=True)
    (folder / "tokens.json").write_text(
        json.dumps({"n_tokens": 5_000, "group_tokens": None, "tokens_per_word": 1.3})
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(TEST_CONFIG),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "past the end of the run" in out.stderr + out.stdout
    assert f"results/corpus/{corpus}/tokens.json" in out.stderr + out.stdout
