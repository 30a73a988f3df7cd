"""One RL step, timed: our PPO (sampling / reward / update) next to TRL's GRPO step and, optionally,
the paper's own stack (TRL 0.9.4 PPOTrainer, run from its own venv), interleaved round by round.

    python benchmarks/ppo_step.py --model tiny --batch 32 --rounds 5 \
        --paper-python /tmp/paper-venv/bin/python \
        --paper-script /work/shared/bench/paper_stack/paper_ppo_step.py

The model is a random GPT-2 (tiny: 2 layers x 2 heads x 64 wide, 256 positions; small: 12 x 12 x
768, 512 positions, vocab 16,000) with a 2,000-token byte-level BPE trained at start-up on the
demo corpus; every story runs to 90 new tokens (a random model rarely samples EOS). Reward: words
/ 90, as in the paper-stack bench. The paper's PPO settings throughout (one minibatch = the batch,
4 epochs, lr 1e-6, adaptive KL). Prints a table of medians; writes JSON under benchmarks/out/.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, n_positions=256, vocab_size=None),
    "small": dict(n_layer=12, n_head=12, n_embd=768, n_positions=512, vocab_size=16000),
}


def other_cores(before, after):
    """Cores used by other processes between two (/proc/stat busy s, own cpu s, wall s) snapshots."""
    wall = after[2] - before[2]
    return (
        round(max(0.0, (after[0] - before[0] - (after[1] - before[1])) / wall), 2)
        if wall > 0
        else None
    )


def snapshot():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = (sum(v) - v[3] - v[4] - v[7]) / os.sysconf("SC_CLK_TCK")
    return busy, time.process_time(), time.perf_counter()


def wait_quiet(max_wait: float, quiet: float = 0.25) -> None:
    """Sleep in 1 s windows until other processes use under `quiet` cores (at most max_wait s)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        a = snapshot()
        time.sleep(1.0)
        if other_cores(a, snapshot()) < quiet:
            return


def build_checkpoint(model: str, out: Path, seed: int):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from storyrl.config import TokenizerConfig
    from storyrl.data.demo_corpus import generate

    tc = TokenizerConfig(vocab_size=2000)
    raw = out / "corpus"
    generate(raw, 60_000, seed=seed)
    lines = [
        ln for f in sorted(raw.rglob("*.train")) for ln in f.read_text().splitlines() if ln.strip()
    ]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        lines,
        vocab_size=tc.vocab_size,
        min_frequency=tc.min_frequency,
        special_tokens=tc.special_tokens,
        show_progress=False,
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token=tc.bos,
        eos_token=tc.eos,
        pad_token=tc.pad,
        unk_token=tc.unk,
        mask_token=tc.mask,
    )
    shape = dict(SHAPES[model])
    shape["vocab_size"] = shape["vocab_size"] or len(tok)
    cfg = GPT2Config(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **shape,
    )
    ckpt = out / "ckpt"
    GPT2LMHeadModel(cfg).save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    return ckpt


class DummyScorer:
    """reward = words / 90 (as the paper-stack bench); replies of three words."""

    def __init__(self, max_new_tokens):
        self.n = max_new_tokens

    def __call__(self, prompts, continuations):
        from types import SimpleNamespace

        import numpy as np

        r = np.array([len(c.split()) / self.n for c in continuations])
        js = [
            SimpleNamespace(reply="1 1 1", scores=(1, 1, 1), parsed=True, teacher_score=x)
            for x in r
        ]
        return js, {"teacher_score": r, "length_bonus": r * 0, "reward": r}


class OurPPO:
    def __init__(self, ckpt, args):
        import torch

        from storyrl.config import RLConfig
        from storyrl.core.checkpoints import load_checkpoint
        from storyrl.rl.ppo import PolicyWithValue, PPOTrainer
        from storyrl.stories.sampling import batch_prompts

        self.cfg = RLConfig(batch_size=args.batch, sampling={"max_new_tokens": args.max_new_tokens})
        torch.manual_seed(args.seed)
        self.tok, lm = load_checkpoint(ckpt)
        _, ref = load_checkpoint(ckpt)
        self.trainer = PPOTrainer(PolicyWithValue(lm), ref, self.cfg.ppo, self.tok.pad_token_id)
        self.prompts = batch_prompts(self.cfg.prompts, args.batch)
        self.scorer = DummyScorer(args.max_new_tokens)
        self.steps = 0

    def step(self):
        import torch

        from storyrl.stories.sampling import sample

        t0 = time.perf_counter()
        ro = sample(
            self.trainer.policy.lm,
            self.tok,
            self.prompts,
            self.cfg.sampling,
            train_mode=self.cfg.sampling.train_mode and self.steps > 0,
        )
        t1 = time.perf_counter()
        _, rewards = self.scorer(self.prompts, ro.texts)
        t2 = time.perf_counter()
        self.trainer.step(
            ro.queries, ro.responses, torch.tensor(rewards["reward"], dtype=torch.float32)
        )
        t3 = time.perf_counter()
        self.steps += 1
        return {
            "generate_s": t1 - t0,
            "reward_s": t2 - t1,
            "update_s": t3 - t2,
            "total_s": t3 - t0,
            "tokens": sum(len(r) for r in ro.responses),
        }


def grpo_steps(ckpt, args, n_steps: int) -> list[dict]:
    """TRL GRPO on the same batch: batch/8 prompts x 8 generations, one update per batch."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from storyrl.config import PAPER_PROMPT
    from storyrl.core.checkpoints import load_checkpoint

    tok, lm = load_checkpoint(ckpt)
    scorer = DummyScorer(args.max_new_tokens)
    times, reward_t = [], []

    def reward(prompts, completions, **_):
        t = time.perf_counter()
        out = scorer(prompts, completions)[1]["reward"].tolist()
        reward_t.append(time.perf_counter() - t)
        return out

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t)

    with tempfile.TemporaryDirectory() as out:
        g = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=args.batch,
            num_generations=8,
            steps_per_generation=1,
            gradient_accumulation_steps=1,
            max_steps=n_steps,
            max_completion_length=args.max_new_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            learning_rate=1e-6,
            lr_scheduler_type="constant",
            logging_steps=10**6,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            use_cpu=True,
            seed=args.seed,
        )
        ds = Dataset.from_dict({"prompt": [PAPER_PROMPT] * (args.batch // 8)})
        t = GRPOTrainer(
            model=lm,
            reward_funcs=[reward],
            args=g,
            train_dataset=ds,
            processing_class=tok,
            callbacks=[Timer()],
        )
        t.train()
    return [{"total_s": s, "reward_s": r} for s, r in zip(times, reward_t)]


def paper_steps(args, model: str) -> list[dict]:
    cmd = [
        args.paper_python,
        args.paper_script,
        "--model",
        model,
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps_per_round),
        "--warmup",
        "1",
        "--threads",
        str(args.threads),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--wait-quiet",
        str(args.wait_quiet),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    return [
        {
            "generate_s": r["generate_s"],
            "reward_s": r["reward_s"],
            "update_s": r["step_s"],
            "total_s": r["total_s"],
            "other_cores": r.get("other_cores"),
        }
        for r in rows
        if r.get("event") == "step" and not r.get("warmup")
    ]


def med(rows, key):
    xs = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(xs) if xs else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(SHAPES), default="tiny")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps-per-round", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=90)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--no-grpo", action="store_true")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each step wait up to S s until other processes use < 0.25 cores",
    )
    p.add_argument(
        "--paper-python", help="python of a venv with trl 0.9.4 (see the paper-stack README)"
    )
    p.add_argument("--paper-script", help="paper_ppo_step.py")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ppo_step_"))
    ckpt = build_checkpoint(args.model, work, args.seed)
    ours = OurPPO(ckpt, args)
    ours.step()  # warm-up
    res = {"ours": [], "grpo": [], "paper": []}
    for r in range(args.rounds):
        if args.paper_python:
            res["paper"] += paper_steps(args, args.model)
        for _ in range(args.steps_per_round):
            wait_quiet(args.wait_quiet)
            a = snapshot()
            row = ours.step()
            row["other_cores"] = other_cores(a, snapshot())
            res["ours"].append(row)
        if not args.no_grpo:
            wait_quiet(args.wait_quiet)
            res["grpo"] += grpo_steps(ckpt, args, args.steps_per_round + 1)[
                1:
            ]  # first step = warm-up
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(
        f"\n{args.model}, batch {args.batch}, {args.max_new_tokens} new tokens, {args.threads} threads; "
        f"medians over {args.rounds} interleaved rounds x {args.steps_per_round} steps"
    )
    print(
        f"{'implementation':<34}{'sample s':>10}{'reward s':>10}{'update s':>10}{'total s':>10}{'n':>4}"
    )
    names = {
        "paper": "paper stack (TRL 0.9.4, gen x4)",
        "ours": "ours (PPO, whole batch)",
        "grpo": "TRL 1.16 GRPO (8 per prompt)",
    }
    for k in ("paper", "ours", "grpo"):
        if res[k]:
            print(
                f"{names[k]:<34}{med(res[k], 'generate_s'):>10.3f}{med(res[k], 'reward_s'):>10.4f}"
                f"{med(res[k], 'update_s'):>10.3f}{med(res[k], 'total_s'):>10.3f}{len(res[k]):>4}"
            )
    quiet = {
        k: [
            r for r in v if (r.get("other_cores") if r.get("other_cores") is not None else 9) < 0.25
        ]
        for k, v in res.items()
        if k != "grpo"
    }
    if quiet.get("paper") and quiet.get("ours"):
        print("quiet steps only (other processes < 0.25 cores):")
        for k in ("paper", "ours"):
            print(
                f"{names[k]:<34}{med(quiet[k], 'generate_s'):>10.3f}{med(quiet[k], 'reward_s'):>10.4f}"
                f"{med(quiet[k], 'update_s'):>10.3f}{med(quiet[k], 'total_s'):>10.3f}{len(quiet[k]):>4}"
            )
        print(
            f"ours / paper stack, whole step, quiet: "
            f"{med(quiet['ours'], 'total_s') / med(quiet['paper'], 'total_s'):.2f}"
        )
    summary = {
        k: {f: med(v, f) for f in ("generate_s", "reward_s", "update_s", "total_s")}
        for k, v in res.items()
        if v
    }
    if res["paper"]:
        summary["ratio_ours_to_paper"] = summary["ours"]["total_s"] / summary["paper"]["total_s"]
        print(f"ours / paper stack, whole step: {summary['ratio_ours_to_paper']:.2f}")
    if res["grpo"]:
        print(
            f"ours / TRL GRPO, whole step: {summary['ours']['total_s'] / summary['grpo']['total_s']:.2f}"
        )
    print(
        f"other processes' cores during the steps (median): ours {med(res['ours'], 'other_cores')}, "
        f"paper {med(res['paper'], 'other_cores')}"
    )
    out = Path(__file__).parent / "out" / f"ppo_step_{args.model}_b{args.batch}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "summary": summary, "raw": res}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
