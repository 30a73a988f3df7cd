"""The PPO update in bf16 autocast (`rl.ppo.precision`) against fp32, on a tiny real GPT-2 built
from its config: from the same state and batch, the losses, the KL and the updated weights agree
within stated tolerances, weights and Adam's state stay fp32, and `auto` is plain fp32 on a CPU.

Tolerances, from measurements (seeds 0-2, two PPO steps, 2 minibatches x 4 epochs, lr 1e-3):
the weight update differed by 3.7-4.7% (relative L2 norm; Adam's first steps are almost
sign-of-gradient, so bf16 noise in small gradients shows at full step size); losses and KL by
<= 1.7% relative, approxkl by <= 2.2%, the sampled tokens' entropy by <= 5e-5 relative. The
bounds below are 3x those or more. On an H200 at the paper's shape (GPT-2 small, batch 360,
lr 1e-6, benchmarks/ppo_precision.py) the update differed by 2.5% after four steps.
"""

import copy

import pytest
import torch
from pydantic import ValidationError

from storyrl.config import PPOConfig, RLConfig
from storyrl.rl.ppo import PolicyWithValue, PPOTrainer, autocast_dtype
from storyrl.testing import tiny_gpt2

VOCAB = 29
UPDATE_REL_TOL = 0.15
STAT_REL_TOL, STAT_ABS_TOL = 0.05, 1e-4
ENTROPY_REL_TOL = 1e-3


def tiny_policy(seed: int = 0) -> PolicyWithValue:
    return PolicyWithValue(tiny_gpt2(VOCAB, seed=seed))


def toy_batch():
    """16 stories: two prompt lengths, responses of 1-12 tokens, scores in [0, 1)."""
    g = torch.Generator().manual_seed(1)
    qs = [torch.tensor([9, 10, 11, 12]), torch.tensor([9, 10, 11, 12, 13, 14])] * 8
    rs = [
        torch.randint(5, VOCAB, (int(n),), generator=g)
        for n in torch.randint(1, 13, (16,), generator=g)
    ]
    return qs, rs, torch.rand(16, generator=g)


def two_steps(base: PolicyWithValue, precision: str):
    """Two PPO steps from a copy of `base` (the reference: a copy of its LM). Returns the
    trainer and each step's stats."""
    policy, ref = copy.deepcopy(base), copy.deepcopy(base.lm)
    trainer = PPOTrainer(
        policy, ref, PPOConfig(lr=1e-3, mini_batch_size=8, precision=precision), pad_id=1
    )
    torch.manual_seed(5)  # the same minibatch order every way
    qs, rs, scores = toy_batch()
    return trainer, [trainer.step(qs, rs, scores)[0] for _ in range(2)]


@pytest.fixture(scope="module")
def runs():
    base = tiny_policy()
    start = {k: v.clone() for k, v in base.state_dict().items()}
    return start, {p: two_steps(base, p) for p in ("fp32", "bf16", "auto")}


def test_bf16_step_agrees_with_fp32(runs):
    start, out = runs
    (t32, s32), (t16, s16) = out["fp32"], out["bf16"]
    w32, w16 = t32.policy.state_dict(), t16.policy.state_dict()
    moved = sum(((w32[k] - start[k]) ** 2).sum() for k in start).sqrt()
    apart = sum(((w16[k] - w32[k]) ** 2).sum() for k in start).sqrt()
    # bf16 really ran (the weights are not bit-identical) and stayed close.
    assert 0 < apart / moved < UPDATE_REL_TOL, float(apart / moved)
    assert s32[1]["kl"] > 0.01  # step 2's KL measures step 1's update: a real comparison
    for a, b in zip(s32, s16):
        for k in ("kl", "policy_loss", "value_loss", "approxkl"):
            assert abs(a[k] - b[k]) <= STAT_REL_TOL * abs(a[k]) + STAT_ABS_TOL, (k, a[k], b[k])
        assert b["entropy"] == pytest.approx(a["entropy"], rel=ENTROPY_REL_TOL)
    assert t16.kl_ctl.value == pytest.approx(t32.kl_ctl.value, rel=1e-5)


def test_bf16_keeps_fp32_weights_and_adam_state(runs):
    trainer, _ = runs[1]["bf16"]
    assert trainer.amp == torch.bfloat16
    assert {p.dtype for p in trainer.policy.parameters()} == {torch.float32}
    assert {p.dtype for p in trainer.ref.parameters()} == {torch.float32}
    adam = trainer.optimizer.state_dict()["state"]
    assert adam and {t.dtype for s in adam.values() for k, t in s.items() if k != "step"} == {
        torch.float32
    }


def test_auto_is_fp32_on_cpu_bit_for_bit(runs):
    (t32, s32), (ta, sa) = runs[1]["fp32"], runs[1]["auto"]
    assert autocast_dtype("auto", torch.device("cpu")) is None and ta.amp is None
    assert s32 == sa
    w32, wa = t32.policy.state_dict(), ta.policy.state_dict()
    assert all(torch.equal(w32[k], wa[k]) for k in w32)


def test_precision_setting_is_checked():
    assert PPOConfig().precision == "auto"  # = fp32 on a CPU (above), bf16 trunk on a bf16 GPU
    with pytest.raises(ValidationError, match="ppo.precision"):
        RLConfig.model_validate({"ppo": {"precision": "fp16"}})


@pytest.mark.parametrize("before", ["tf32", "ieee"])
def test_tf32_switch_works_after_the_new_api_was_used_in_the_process(before):
    # The GPU check found it: the Trainer (or a compiled graph) sets TF32 through the new API
    # (`fp32_precision`), after which torch refuses to read the legacy `allow_tf32`, and every
    # PPO step died. A subprocess: the new API stays switched on for the whole process.
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from storyrl.rl.ppo import tf32_matmuls\n"
        "m = torch.backends.cuda.matmul\n"
        f"m.fp32_precision = {before!r}\n"
        "with tf32_matmuls(torch.device('cuda'), True):\n"
        "    inside = m.fp32_precision\n"
        "print(inside, m.fp32_precision)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["tf32", before]
