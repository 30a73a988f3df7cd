"""Pretraining's speed settings (fused AdamW, fused GELU, unpadded batches without a mask, a
larger micro-batch, torch.compile) train the same model: the loss of the first steps and the
weights after them equal those of the plain settings within float tolerance (fp32, tiny GPT-2
on CPU)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from storyrl.config import ModelConfig, TrainingConfig
from storyrl.pretrain.train import pretrain
from storyrl.testing import numbered_tokenizer

VOCAB, STEPS, BATCH = 200, 6, 8
# No dropout: its masks are drawn per forward pass, so a micro-batch of 8 and four of 2 (and
# inductor's RNG) draw different masks of the same distribution.
MODEL = ModelConfig(n_layer=2, n_head=2, n_embd=32, n_positions=32, dropout=0.0)
PLAIN = dict(
    micro_batch_size=2, fused_adamw=False, fused_gelu=False, compile=False, pad_batches=True
)
FAST = dict(micro_batch_size=8, fused_adamw=True, fused_gelu=True, compile=False, pad_batches=False)


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    numbered_tokenizer(VOCAB, root / "tok")
    n = STEPS * BATCH * MODEL.n_positions
    # A stream with structure (each token likely follows its predecessor + 1), so the loss moves.
    rng = np.random.default_rng(0)
    tokens = (5 + np.cumsum(rng.integers(0, 3, n)) % (VOCAB - 5)).astype(np.uint16)
    tokens.tofile(root / "tokens.bin")
    meta = {"dtype": "uint16", "n_tokens": n, "n_words": n, "tokens_per_word": 1.0}
    (root / "tokens.json").write_text(json.dumps(meta))
    return root


def train(stream, work, settings):
    training = TrainingConfig(
        lr=3e-3, batch_size=BATCH, epochs=1, log_every=1, save_every=10**6, threads=1, **settings
    )
    out = pretrain(
        stream / "tokens.bin",
        stream / "tokens.json",
        stream / "tok",
        work,
        "speed",
        MODEL,
        training,
        [STEPS * BATCH * MODEL.n_positions],
        seed=3,
    )
    ckpt = next(out.glob("ckpt-*"))
    return pd.read_parquet(work / "log.parquet")["loss"].to_numpy(), ckpt


def assert_same_run(a, b, rtol):
    (loss_a, ckpt_a), (loss_b, ckpt_b) = a, b
    assert len(loss_a) == STEPS and loss_a[-1] < loss_a[0] - 0.05  # it learns
    np.testing.assert_allclose(loss_b, loss_a, rtol=rtol)
    wa, wb = load_file(ckpt_a / "model.safetensors"), load_file(ckpt_b / "model.safetensors")
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.fixture(scope="module")
def plain(stream, tmp_path_factory):
    return train(stream, tmp_path_factory.mktemp("plain"), PLAIN)


def test_fused_kernels_and_a_larger_micro_batch_train_the_same_model(stream, plain, tmp_path):
    fast = train(stream, tmp_path / "fast", FAST)
    assert_same_run(plain, fast, rtol=1e-5)
    # The checkpoint keeps GPT-2's own activation: it loads and evaluates as before.
    model = AutoModelForCausalLM.from_pretrained(fast[1])
    assert model.config.activation_function == "gelu_new"
    assert type(model.transformer.h[0].mlp.act).__name__ == "NewGELUActivation"


def test_the_kernels_are_not_part_of_the_runs_identity(stream, plain, tmp_path):
    """A state saved with the speed settings off resumes with them on (the same
    run_config.json) instead of being moved aside as stale."""
    work = tmp_path / "fused"
    fused = train(stream, work, {**FAST, "micro_batch_size": PLAIN["micro_batch_size"]})
    assert_same_run(plain, fused, rtol=1e-5)
    assert (work / "run_config.json").read_text() == (
        plain[1].parents[1] / "run_config.json"
    ).read_text()


def test_compiled_training_trains_the_same_model(stream, plain, tmp_path):
    """torch.compile through the Trainer (slow on CPU: compiling forward and backward)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    assert_same_run(plain, train(stream, tmp_path / "compiled", {**FAST, "compile": True}), 1e-4)
    assert counters["stats"]["unique_graphs"] > 0  # it did compile
