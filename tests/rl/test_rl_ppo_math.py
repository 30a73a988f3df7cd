"""PPO math on small tensors, against values worked out by hand (TRL 0.9.4 semantics)."""

import math

import pytest
import torch

from storyrl.config import PPOConfig
from storyrl.rl.ppo import KLController, gae, masked_whiten, pack, per_token_rewards, ppo_losses


def close(a, b, tol=1e-5):
    return torch.allclose(
        torch.as_tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32), atol=tol
    )


def test_whitening_uses_unbiased_masked_variance():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    # mean 2, biased var 2/3, unbiased 1 -> (x - 2) / 1; the masked value is shifted too.
    assert close(masked_whiten(x, mask), [[-1.0, 0.0, 1.0, 98.0]])
    assert close(masked_whiten(x, mask, shift_mean=False), [[1.0, 2.0, 3.0, 100.0]])


def test_per_token_rewards_kl_everywhere_score_on_last_response_token():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0, -4.0]])
    ref = torch.tensor([[-1.5, -2.0, -2.0, -4.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    rewards, non_score, kls = per_token_rewards(
        torch.tensor([2.0]), logprobs, ref, mask, kl_coef=0.5
    )
    assert close(kls, [[0.5, 0.0, -1.0, 0.0]])
    assert close(non_score, [[-0.25, 0.0, 0.5, 0.0]])
    assert close(
        rewards, [[-0.25, 0.0, 2.5, 0.0]]
    )  # score 2 lands on index 2, the last in the mask


def test_per_token_rewards_rows_of_different_lengths():
    zeros = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, _, _ = per_token_rewards(torch.tensor([1.0, 3.0]), zeros, zeros, mask, kl_coef=0.2)
    assert close(rewards, [[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])


def test_gae_by_hand():
    values = torch.tensor([[0.0, 1.0, 2.0, 9.0]])
    rewards = torch.tensor([[5.0, 0.0, 3.0, 7.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    # masked: values [0,1,2,0], rewards [0,0,3,0]; gamma 1, lam 0.5, backwards from t=3:
    # A3 = 0; A2 = 3 + 0 - 2 = 1; A1 = (0 + 2 - 1) + 0.5*1 = 1.5; A0 = (0 + 1 - 0) + 0.5*1.5 = 1.75
    v, adv, ret = gae(values, rewards, mask, gamma=1.0, lam=0.5)
    assert close(v, [[0.0, 1.0, 2.0, 0.0]])
    assert close(ret, [[1.75, 2.5, 3.0, 0.0]])
    # whitened over the mask {1.5, 1}: mean 1.25, unbiased std sqrt(0.125)
    s = math.sqrt(0.125)
    assert close(adv[0, 1:3], [0.25 / s, -0.25 / s])
    # gamma 0.5, lam 1: A2 = 3 - 2 = 1; A1 = (0 + 0.5*2 - 1) + 0.5*1 = 0.5
    _, _, ret = gae(values, rewards, mask, gamma=0.5, lam=1.0)
    assert close(ret[0, 1:3], [1.5, 3.0])


def test_kl_controller_update_rule():
    kl = KLController(0.2, target=6, horizon=10_000)
    kl.update(9.0, 360)  # error 0.5 clipped to 0.2: x (1 + 0.2 * 360 / 10000)
    assert kl.value == pytest.approx(0.2 * 1.0072)
    kl = KLController(0.2, target=6, horizon=10_000)
    kl.update(5.4, 360)  # error -0.1: x (1 - 0.0036)
    assert kl.value == pytest.approx(0.2 * 0.9964)
    fixed = KLController(0.2, target=6, horizon=10_000, adaptive=False)
    fixed.update(100.0, 360)
    assert fixed.value == 0.2


def test_clipped_policy_and_value_losses():
    cfg = PPOConfig()  # clip 0.2 both, vf_coef 0.1
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]])).requires_grad_()
    adv = torch.ones(1, 2)
    mask = torch.ones(1, 2)
    values = torch.zeros(1, 2)
    vpreds = torch.tensor([[0.5, -0.1]], requires_grad=True)
    returns = torch.ones(1, 2)
    pg, vf, st = ppo_losses(old, values, new, vpreds, mask, adv, returns, cfg)
    # ratio [1.5, 0.5]: max(-[1.5, 0.5], -[1.2, 0.8]) = [-1.2, -0.5] -> mean -0.85
    assert pg.item() == pytest.approx(-0.85)
    assert st["clipfrac"] == pytest.approx(0.5)
    assert st["ratio"] == pytest.approx(1.0)
    # vpred clipped to [0.2, -0.1]; max((v-1)^2, (vc-1)^2) = [0.64, 1.21]; 0.5 * mean = 0.4625
    assert st["value_loss"] == pytest.approx(0.4625)
    assert vf.item() == pytest.approx(0.04625)
    assert st["skipped"] == 0.0


def test_ratio_threshold_zeroes_the_minibatch():
    cfg = PPOConfig()  # threshold 10
    new = torch.log(torch.tensor([[20.0, 20.0]])).requires_grad_()
    vpreds = torch.tensor([[3.0, 3.0]], requires_grad=True)
    pg, vf, st = ppo_losses(
        torch.zeros(1, 2),
        torch.zeros(1, 2),
        new,
        vpreds,
        torch.ones(1, 2),
        torch.ones(1, 2),
        torch.ones(1, 2),
        cfg,
    )
    assert st["skipped"] == 1.0 and st["ratio"] == pytest.approx(20.0)
    (pg + vf).backward()
    assert pg.item() == 0.0 and vf.item() == 0.0
    assert torch.all(new.grad == 0) and torch.all(vpreds.grad == 0)
    # just under the threshold the loss is kept
    new9 = torch.log(torch.tensor([[9.0, 9.0]]))
    _, _, st9 = ppo_losses(
        torch.zeros(1, 2),
        torch.zeros(1, 2),
        new9,
        torch.zeros(1, 2),
        torch.ones(1, 2),
        torch.ones(1, 2),
        torch.ones(1, 2),
        cfg,
    )
    assert st9["skipped"] == 0.0


def test_pack_masks_response_tokens_in_shifted_positions():
    q = [torch.tensor([5, 6, 7]), torch.tensor([5, 6, 7])]
    r = [torch.tensor([8, 9]), torch.tensor([8, 9, 10, 2])]
    ids, attn, mask = pack(q, r, pad_id=1, device="cpu")
    assert ids.tolist() == [[5, 6, 7, 8, 9, 1, 1], [5, 6, 7, 8, 9, 10, 2]]
    assert attn.tolist() == [[1, 1, 1, 1, 1, 0, 0], [1] * 7]
    # index t predicts token t+1: the first response token is predicted at index 2
    assert mask.tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]]
