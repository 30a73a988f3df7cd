"""Cross-check: our PPO step against TRL 0.9.4's `PPOTrainer.step` on the same weights and batch.

    python benchmarks/trl094_equivalence.py --paper-python /tmp/paper-venv/bin/python

Part A runs in the paper's venv (trl 0.9.4): it builds a tiny GPT-2 checkpoint and a word-level
tokenizer, runs two PPO steps on fixed queries/responses/scores (lr 1e-3 so the update is large)
and saves the initial value head, the final weights and TRL's stats. Part B (this venv) runs our
PPO from the same checkpoint and value head on the same batch and prints the largest differences.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = "once upon a time in land far away there lived king queen moon star tale".split()
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def batch(torch):
    g = torch.Generator().manual_seed(1)
    qs = [torch.tensor([4, 5, 6, 7]), torch.tensor([4, 5, 6, 7, 8, 9])] * 4
    rs = [
        torch.randint(4, len(SPECIALS) + len(WORDS), (int(n),), generator=g)
        for n in torch.randint(1, 9, (8,), generator=g)
    ]
    scores = torch.rand(8, generator=g)
    return qs, rs, scores


def part_a(out: Path):
    import torch
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    from storyrl.testing import tiny_checkpoint, word_tokenizer

    tok = word_tokenizer(WORDS, SPECIALS)
    tiny_checkpoint(out / "ckpt", tok, seed=0)
    model = AutoModelForCausalLMWithValueHead.from_pretrained(str(out / "ckpt"))
    ref = AutoModelForCausalLMWithValueHead.from_pretrained(str(out / "ckpt"))
    torch.save(model.v_head.summary.state_dict(), out / "v_head.pt")
    cfg = PPOConfig(
        learning_rate=1e-3,
        batch_size=8,
        mini_batch_size=8,
        ppo_epochs=4,
        init_kl_coef=0.2,
        target=6,
        horizon=10000,
        adap_kl_ctrl=True,
        log_with=None,
    )
    trainer = PPOTrainer(config=cfg, model=model, ref_model=ref, tokenizer=tok)
    qs, rs, scores = batch(torch)
    stats = []
    for _ in range(2):
        st = trainer.step(qs, rs, list(scores))
        stats.append(
            {
                "kl": float(st["objective/kl"]),
                "kl_coef": float(st["objective/kl_coef"]),
                "entropy": float(st["objective/entropy"]),
                "value_loss": float(st["ppo/loss/value"]),
                "policy_loss": float(st["ppo/loss/policy"]),
                "ratio": float(st["ppo/policy/ratio"].mean()),
                "kl_coef_after": float(trainer.kl_ctl.value),
            }
        )
    torch.save(model.state_dict(), out / "trl_final.pt")
    (out / "trl_stats.json").write_text(json.dumps(stats))


def part_b(out: Path):
    import torch
    from transformers import AutoModelForCausalLM

    from storyrl.config import PPOConfig
    from storyrl.rl.ppo import PolicyWithValue, PPOTrainer

    lm = AutoModelForCausalLM.from_pretrained(out / "ckpt")
    ref = AutoModelForCausalLM.from_pretrained(out / "ckpt")
    policy = PolicyWithValue(lm)
    policy.v_head.load_state_dict(torch.load(out / "v_head.pt"))
    trainer = PPOTrainer(policy, ref, PPOConfig(lr=1e-3, precision="fp32"), pad_id=1)
    qs, rs, scores = batch(torch)
    ours = []
    for _ in range(2):
        st, _ = trainer.step(qs, rs, scores)
        ours.append({**st, "kl_coef_after": trainer.kl_ctl.value})
    theirs = json.loads((out / "trl_stats.json").read_text())
    trl_w = torch.load(out / "trl_final.pt")
    start = AutoModelForCausalLM.from_pretrained(out / "ckpt").state_dict()
    worst, moved = 0.0, 0.0
    for k, v in policy.lm.state_dict().items():
        w = trl_w.get(k, trl_w.get("pretrained_model." + k))
        if w is None:
            continue
        worst = max(worst, (v - w).abs().max().item())
        moved = max(moved, (w - start[k]).abs().max().item())
    vh = max(
        (policy.v_head.state_dict()[k] - trl_w["v_head.summary." + k]).abs().max().item()
        for k in ("weight", "bias")
    )
    print(f"largest weight change made by TRL's two steps: {moved:.2e}")
    print(f"largest |ours - TRL| after two steps: LM {worst:.2e}, value head {vh:.2e}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        for k in b:
            print(f"step {i + 1} {k:14s} ours {a[k]: .6f}  TRL {b[k]: .6f}")
    # TRL's logged ratio averages over padding too; ours is the masked mean, so it is not compared.
    same = all(
        abs(a[k] - b[k]) <= 1e-4 * max(1.0, abs(b[k]))
        for a, b in zip(ours, theirs)
        for k in b
        if k != "ratio"
    )
    ok = same and worst <= 1e-3 * moved
    print("MATCH" if ok else "MISMATCH")
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--paper-python", help="python of the trl 0.9.4 venv")
    p.add_argument("--part-a", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.part_a:
        return part_a(Path(args.part_a))
    out = Path(tempfile.mkdtemp(prefix="trl094_"))
    subprocess.run([args.paper_python, __file__, "--part-a", str(out)], check=True)
    return part_b(out)


if __name__ == "__main__":
    sys.exit(main())
