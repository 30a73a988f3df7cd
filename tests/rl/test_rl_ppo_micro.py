"""`ppo.micro_batch`: gradient accumulation inside a minibatch is the same update as one pass.

fp32 on CPU, a tiny GPT-2: from the same state, batch and minibatch order, the weights after
two steps and the steps' statistics agree with the unbatched update to float tolerance, also
where the ratio check zeroes some minibatches (it must see the whole minibatch's mean ratio,
not a micro-batch's)."""

import copy

import pytest
import torch

from storyrl.config import PPOConfig
from storyrl.rl.ppo import PPOTrainer
from test_rl_ppo_precision import tiny_policy, toy_batch


def two_steps(base, **ppo):
    policy, ref = copy.deepcopy(base), copy.deepcopy(base.lm)
    cfg = PPOConfig(lr=1e-3, mini_batch_size=8, precision="fp32", **ppo)
    trainer = PPOTrainer(policy, ref, cfg, pad_id=1)
    torch.manual_seed(5)  # the same minibatch order every way
    qs, rs, scores = toy_batch()
    stats = [trainer.step(qs, rs, scores)[0] for _ in range(2)]
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}, stats


def distance(a, b):
    return sum(((a[k] - b[k]) ** 2).sum() for k in a).sqrt().item()


@pytest.fixture(scope="module")
def base():
    return tiny_policy()


def test_micro_batches_make_the_same_update(base):
    start = {k: v.clone() for k, v in base.state_dict().items()}
    whole, whole_stats = two_steps(base)
    parts, parts_stats = two_steps(base, micro_batch=3)  # uneven: 3 + 3 + 2
    moved = distance(whole, start)
    assert moved > 1e-2  # the update did something
    assert distance(parts, whole) < 1e-4 * moved
    for s_whole, s_parts in zip(whole_stats, parts_stats):
        assert s_parts.keys() == s_whole.keys()
        for k in s_whole:
            assert s_parts[k] == pytest.approx(s_whole[k], rel=1e-4, abs=1e-6), k


def test_ratio_check_sees_the_whole_minibatch(base):
    # A threshold just above 1: after the first update some minibatches' mean ratio exceeds it
    # and some do not, and single stories scatter on both sides of it.
    threshold = 1.0 + 1e-4
    whole, whole_stats = two_steps(base, ratio_threshold=threshold)
    skipped = [s["skipped_minibatches"] for s in whole_stats]
    assert 0 < sum(skipped) < 2 * 4 * 2, skipped  # some skipped, not all: the check matters
    parts, parts_stats = two_steps(base, ratio_threshold=threshold, micro_batch=1)
    assert [s["skipped_minibatches"] for s in parts_stats] == skipped
    assert distance(parts, whole) < 1e-4 * distance(whole, tiny_policy().state_dict())
