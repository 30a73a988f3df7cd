"""The PPO update in fp32 and in bf16 autocast (`rl.ppo.precision`) side by side, from the same
state on the same batch: seconds per `PPOTrainer.step`, peak GPU memory, and how far the two
runs' stats and weights end up apart.

    python benchmarks/ppo_precision.py --model tiny --batch 16 --steps 2     # CPU: a smoke only
    python benchmarks/ppo_precision.py --model small --batch 360 --steps 3   # GPU: the paper's shape

The model is a random GPT-2 (shapes as in ppo_step.py: small = 12 x 12 x 768, vocab 16,000); the
batch is random token ids, `--prompt` prompt tokens and `--response` response tokens in every
row (the worst case, as in the paper's early steps), with random scores. The paper's PPO settings
(one minibatch = the batch, 4 epochs, adaptive KL), lr 1e-6 unless `--lr`. Each precision runs
`--warmup` untimed steps, then `--steps` timed ones. CPU timings say nothing about a GPU.
"""

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

SHAPES = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, n_positions=256, vocab_size=2000),
    "small": dict(n_layer=12, n_head=12, n_embd=768, n_positions=512, vocab_size=16000),
}
COMPARED = ("kl", "policy_loss", "value_loss", "entropy", "approxkl", "ratio")


def run(base, batch, precision: str, args, device) -> dict:
    import torch

    from storyrl.config import PPOConfig
    from storyrl.rl.ppo import PPOTrainer, autocast_dtype

    policy, ref = copy.deepcopy(base).to(device), copy.deepcopy(base.lm).to(device)
    trainer = PPOTrainer(policy, ref, PPOConfig(lr=args.lr, precision=precision), pad_id=0)
    torch.manual_seed(args.seed)  # the same minibatch order both ways
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, stats = [], []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        st, _ = trainer.step(*batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
        stats.append({k: st[k] for k in COMPARED})
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    weights = {k: v.detach().float().cpu() for k, v in policy.state_dict().items()}
    del trainer, policy, ref
    return {
        "precision": precision,
        "trunk": str(autocast_dtype(precision, device) or torch.float32),
        "step_s": times,
        "median_s": statistics.median(times),
        "peak_gib": peak,
        "stats": stats,
        "weights": weights,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--prompt", type=int, default=20)
    p.add_argument("--response", type=int, default=90)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument(
        "--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "auto"]
    )
    p.add_argument("--device", default="cuda" if __import__("torch").cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", help="JSON file (default benchmarks/out/ppo_precision_<model>_b<batch>.json)"
    )
    args = p.parse_args(argv)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from storyrl.rl.ppo import PolicyWithValue

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    shape = SHAPES[args.model]
    base = PolicyWithValue(
        GPT2LMHeadModel(GPT2Config(bos_token_id=0, eos_token_id=0, pad_token_id=0, **shape))
    )
    g = torch.Generator().manual_seed(args.seed)
    queries = [torch.randint(1, shape["vocab_size"], (args.prompt,), generator=g)] * args.batch
    responses = [
        torch.randint(1, shape["vocab_size"], (args.response,), generator=g)
        for _ in range(args.batch)
    ]
    batch = (queries, responses, torch.rand(args.batch, generator=g))
    start = {k: v.detach().clone() for k, v in base.state_dict().items()}

    res = [run(base, batch, prec, args, device) for prec in args.precision]
    print(
        f"{args.model}, batch {args.batch}, {args.prompt}+{args.response} tokens, {device}, "
        f"{args.warmup} warm-up + {args.steps} timed steps each, lr {args.lr}"
    )
    print(f"{'precision':<10}{'trunk':>16}{'median s':>10}{'min s':>8}{'max s':>8}{'peak GiB':>10}")
    for r in res:
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "-"
        print(
            f"{r['precision']:<10}{r['trunk']:>16}{r['median_s']:>10.3f}{min(r['step_s']):>8.3f}"
            f"{max(r['step_s']):>8.3f}{peak:>10}"
        )
    summary = {
        "args": vars(args),
        "runs": [{k: v for k, v in r.items() if k != "weights"} for r in res],
    }
    if len(res) == 2:
        a, b = res
        moved = sum(((a["weights"][k] - start[k].float()) ** 2).sum() for k in start) ** 0.5
        apart = sum(((a["weights"][k] - b["weights"][k]) ** 2).sum() for k in start) ** 0.5
        summary["update_rel_diff"] = float(apart / moved) if moved > 0 else None
        summary["speedup"] = a["median_s"] / b["median_s"]
        print(
            f"{a['precision']} / {b['precision']} step time: {summary['speedup']:.2f}x; "
            f"|dW_{b['precision']} - dW_{a['precision']}| / |dW_{a['precision']}| after "
            f"{args.warmup + args.steps} steps: {summary['update_rel_diff']:.3g}"
        )
        for i, (sa, sb) in enumerate(zip(a["stats"], b["stats"])):
            print(f"step {i + 1}: " + "  ".join(f"{k} {sa[k]:.6g}/{sb[k]:.6g}" for k in COMPARED))
    out = Path(
        args.out or Path(__file__).parent / "out" / f"ppo_precision_{args.model}_b{args.batch}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
