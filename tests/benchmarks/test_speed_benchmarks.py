"""The side-by-side benchmarks the GPU check calls run end to end on a tiny model (CPU)."""

import pytest
import torch
from pretrain_throughput import compare_pretrain
from sampling_throughput import compare_sampling

from storyrl.config import ModelConfig

TINY = ModelConfig(n_layer=1, n_head=2, n_embd=16, n_positions=32, dropout=0.1)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sampling_side_by_side():
    res = compare_sampling(TINY, 60, batch=4, new_tokens=6, reps=1, warmup=1, train_mode=False)
    assert res["static_side"] == "static cache, eager" and res["same_tokens_eval"] is True
    assert res["dynamic_s"] > 0 and res["static_s"] > 0 and res["ratio"] > 0


def test_pretraining_side_by_side():
    res = compare_pretrain(TINY, 60, batch=4, micro_old=2, micro_new=4, steps=2, warmup=1)
    assert res["old"]["fused_gelu"] is False and res["new"]["fused_gelu"] is True
    assert res["new"]["micro_batch_size"] == 4 and res["old_tok_s"] > 0 and res["ratio"] > 0
