"""Pretraining: the step plan, checkpoints that load offline, and resume after SIGKILL/SIGTERM."""

import json
import os
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

from storyrl.config import ConfigError, ModelConfig, PretrainJob, TrainingConfig
from storyrl.pretrain import plan_run

MODEL = ModelConfig(n_layer=1, n_head=2, n_embd=32, n_positions=32, dropout=0.1)
TRAINING = TrainingConfig(lr=3e-3, batch_size=8, micro_batch_size=4, epochs=1, log_every=5,
                          save_every=15, keep_states=2, threads=1)
MILESTONES = [5_000, 20_000, 40_000]


def test_plan_converts_words_to_steps_with_the_measured_ratio():
    t = TrainingConfig(batch_size=4, epochs=2)
    plan = plan_run(n_blocks=1000, block=100, tokens_per_word=1.25, training=t,
                    milestones=[400, 4000, 100_000])
    assert plan.total_steps == 500 and plan.tokens_per_step == 400
    # 400 words = 500 tokens -> step 2 (ceil); 4000 words = 5000 tokens -> step 13 (ceil 12.5)
    assert plan.milestone_steps == {400: 2, 4000: 13, 100_000: 313}
    assert plan.words_at(13) == 4160


def test_plan_rejects_milestones_past_the_run_but_allows_the_approximate_end():
    t = TrainingConfig(batch_size=4, epochs=1)
    plan = plan_run(1000, 100, 1.0, t, [101_000])  # run = 100,000 words; 1% past is "the end"
    assert plan.milestone_steps == {101_000: 250}
    with pytest.raises(ConfigError, match="pretrain.milestones: 200K words is past the end"):
        plan_run(1000, 100, 1.0, t, [200_000])
    with pytest.raises(ConfigError, match="same step"):
        plan_run(1000, 100, 1.0, t, [100, 200])


def _cmd(prepared: Path, work: Path, out: Path, milestones=MILESTONES) -> list[str]:
    job = PretrainJob(run_id="t", model=MODEL, training=TRAINING, milestones=milestones, seed=7)
    return [sys.executable, "-m", "storyrl.cli", "pretrain", "--section", job.model_dump_json(),
            "--tokens", str(prepared / "tokens.bin"), "--tokens-meta", str(prepared / "tokens.json"),
            "--tokenizer", str(prepared / "tokenizer"), "--work-dir", str(work),
            "--checkpoint-dir", str(out), "--log", str(out / "log.parquet")]


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
    assert model.config.n_layer == 1 and model.config.eos_token_id == tok.eos_token_id
    assert tok("Once upon a time")["input_ids"][0] != tok.bos_token_id  # no BOS prepended
    log = pd.read_parquet(reference / "log.parquet")
    assert log["step"].is_monotonic_increasing and (log["tokens_per_s"].dropna() > 0).all()
    assert (log["words_seen"].diff().dropna() > 0).all()
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]


def _wait_for_state(work: Path, proc, min_step: int, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(d.name.split("-")[1]) for d in work.glob("checkpoint-*")
                 if (d / "trainer_state.json").exists()]
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
