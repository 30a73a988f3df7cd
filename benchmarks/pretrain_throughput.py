"""Pretraining loop throughput against bare compute on the same batches, side by side.

For each model it times, interleaved `--reps` times:
  bare f+b      forward + backward only
  bare step     forward + backward + grad clipping + AdamW + LR schedule (the irreducible step)
  storyrl loop  the real `storyrl.pretrain.train.pretrain` (Trainer, callbacks, logging, progress bar)
on the same token blocks and batch size, and reports tokens/s and the loop's overhead.

`--compare` instead runs the storyrl loop twice side by side, interleaved: today's kernel
settings (OLD: eager, GPT-2's gelu_new, padded batches with a mask, the Trainer's fused AdamW)
against the fast ones (NEW: `pretrain.training.compile/fused_gelu/fused_adamw/pad_batches`,
and `--micro-new`), and reports tokens/s of each, their ratio, and the seconds before the
timed steps (which hold the compile time).
`compare_pretrain()` is the function the GPU check calls.

    python benchmarks/pretrain_throughput.py                 # tiny (default config) + GPT-2 small
    python benchmarks/pretrain_throughput.py --models tiny --steps 40
    python benchmarks/pretrain_throughput.py --models tiny --compare --compile false
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback, get_linear_schedule_with_warmup

from storyrl.config import ModelConfig, TrainingConfig
from storyrl.pretrain.train import Blocks, build_model, pretrain
from storyrl.testing import numbered_tokenizer

OLD = dict(compile=False, fused_gelu=False, fused_adamw=True, pad_batches=True)
"""The settings the first GPU check measured (188,770 tokens/s): eager, gelu_new, the
Trainer's padding collator, and its default optimizer with torch >= 2.8, fused AdamW."""
NEW = dict(compile="auto", fused_gelu=True, fused_adamw=True, pad_batches=False)

MODELS = {
    "tiny": (ModelConfig(n_layer=2, n_head=4, n_embd=128, n_positions=128), 2000, 32),
    "gpt2-small": (ModelConfig(n_layer=12, n_head=12, n_embd=768, n_positions=512), 16000, 2),
}


def batches(tokens, block, batch, n):
    ds = Blocks(tokens, block)
    for i in range(n):
        yield torch.stack([ds[(i * batch + j) % len(ds)]["input_ids"] for j in range(batch)])


def bare(model_cfg, vocab_tok, tokens, batch, steps, warmup, with_optimizer: bool) -> float:
    torch.manual_seed(0)
    model = build_model(model_cfg, vocab_tok).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, 1, steps + warmup)
    t0 = None
    for i, x in enumerate(batches(tokens, model_cfg.n_positions, batch, steps + warmup)):
        if i == warmup:
            t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        if with_optimizer:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        opt.zero_grad(set_to_none=True)
    return steps * batch * model_cfg.n_positions / (time.perf_counter() - t0)


class StepClock(TrainerCallback):
    def __init__(self):
        self.begins = []

    def on_step_begin(self, args, state, control, **kw):
        self.begins.append(time.perf_counter())


def loop(
    model_cfg, tok_dir, tokens_bin, meta_path, batch, steps, warmup, work, settings=None, clock=None
) -> float:
    """tokens/s of the real `pretrain()` over steps warmup .. warmup+steps; `settings`:
    TrainingConfig fields (micro_batch_size defaults to the whole batch)."""
    meta = json.loads(Path(meta_path).read_text())
    n_blocks = meta["n_tokens"] // model_cfg.n_positions
    total = steps + warmup + 1
    training = TrainingConfig(
        **{
            "lr": 5e-4,
            "batch_size": batch,
            "micro_batch_size": batch,
            "epochs": total * batch / n_blocks,
            "log_every": 10,
            "save_every": 10**9,
            **(settings or {}),
        }
    )
    clock = clock if clock is not None else StepClock()
    last_words = int(total * batch * model_cfg.n_positions / meta["tokens_per_word"])
    pretrain(
        tokens_bin,
        meta_path,
        tok_dir,
        work,
        "bench",
        model_cfg,
        training,
        [last_words],
        seed=0,
        callbacks=[clock],
    )
    # Steps warmup .. warmup+steps, i.e. excluding start-up and the final save.
    return (
        steps
        * batch
        * model_cfg.n_positions
        / (clock.begins[warmup + steps] - clock.begins[warmup])
    )


def make_stream(tmp: Path, vocab: int, n: int):
    """A random token stream of `n` tokens with its metadata and a tokenizer, in `tmp`."""
    tok_dir = tmp / "tok"
    numbered_tokenizer(vocab, tok_dir)
    tokens = np.random.default_rng(0).integers(5, vocab, n).astype(np.uint16)
    tokens.tofile(tmp / "tokens.bin")
    meta = {"dtype": "uint16", "n_tokens": n, "n_words": n, "tokens_per_word": 1.0}
    (tmp / "tokens.json").write_text(json.dumps(meta))
    return tok_dir, tmp / "tokens.bin", tmp / "tokens.json"


def compare_pretrain(
    model_cfg: ModelConfig,
    vocab: int,
    batch: int,
    micro_old: int,
    micro_new: int,
    steps: int = 10,
    warmup: int = 3,
    reps: int = 1,
    old: dict | None = None,
    new: dict | None = None,
) -> dict:
    """tokens/s of `pretrain()` with the OLD and the NEW kernel settings (medians of `reps`
    interleaved runs of `steps` timed steps after `warmup` steps); ratio = new / old."""
    old = {**OLD, **(old or {}), "micro_batch_size": micro_old}
    new = {**NEW, **(new or {}), "micro_batch_size": micro_new}
    res = {"old": [], "new": []}
    startup = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = (steps + warmup + 2) * batch * model_cfg.n_positions
        tok_dir, tokens_bin, meta = make_stream(tmp, vocab, n)
        for r in range(reps):
            for name, settings in (("old", old), ("new", new)):
                clock = StepClock()
                t0 = time.perf_counter()
                res[name].append(
                    loop(
                        model_cfg,
                        tok_dir,
                        tokens_bin,
                        meta,
                        batch,
                        steps,
                        warmup,
                        tmp / f"{name}{r}",
                        settings,
                        clock,
                    )
                )
                startup[name].append(clock.begins[warmup] - t0)
    med = {k: statistics.median(v) for k, v in res.items()}
    return {
        "batch": f"{batch}x{model_cfg.n_positions}",
        "steps": steps,
        "warmup": warmup,
        "reps": reps,
        "old": old,
        "new": new,
        "old_tok_s": round(med["old"], 1),
        "new_tok_s": round(med["new"], 1),
        "ratio": round(med["new"] / med["old"], 3),
        "s_before_timed_steps": {k: round(statistics.median(v), 1) for k, v in startup.items()},
        "raw": res,
    }


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 30 tiny, 3 small)"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/out/pretrain_throughput.json")
    ap.add_argument("--compare", action="store_true", help="OLD against NEW settings, side by side")
    ap.add_argument("--micro-new", type=int, help="--compare: NEW's micro-batch (default: batch)")
    ap.add_argument("--micro-old", type=int, help="--compare: OLD's micro-batch (default: batch)")
    ap.add_argument("--compile", default="auto", choices=["auto", "true", "false"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    if args.compare:
        rows = []
        for name in args.models:
            model_cfg, vocab, batch = MODELS[name]
            row = compare_pretrain(
                model_cfg,
                vocab,
                batch,
                args.micro_old or batch,
                args.micro_new or batch,
                steps=args.steps or (20 if name == "tiny" else 3),
                reps=args.reps,
                new={"compile": {"auto": "auto", "true": True, "false": False}[args.compile]},
            )
            rows.append({"model": name, **row})
            print(
                f"{name} {row['batch']}: old {row['old_tok_s']:,.0f} tok/s, new "
                f"{row['new_tok_s']:,.0f} tok/s, ratio {row['ratio']:.2f}x "
                f"(s before the timed steps {row['s_before_timed_steps']}; new = {row['new']})"
            )
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=2))
        return

    rows = []
    for name in args.models:
        model_cfg, vocab, batch = MODELS[name]
        steps = args.steps or (30 if name == "tiny" else 3)
        warmup = 2
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            tok_dir = tmp / "tok"
            tok = numbered_tokenizer(vocab, tok_dir)
            n = (steps + warmup + 2) * batch * model_cfg.n_positions
            tokens = np.random.default_rng(0).integers(5, vocab, n).astype(np.uint16)
            tokens.tofile(tmp / "tokens.bin")
            meta = {"dtype": "uint16", "n_tokens": n, "n_words": n, "tokens_per_word": 1.0}
            (tmp / "tokens.json").write_text(json.dumps(meta))
            res = {"fb": [], "step": [], "loop": []}
            for r in range(args.reps):
                res["fb"].append(bare(model_cfg, tok, tokens, batch, steps, warmup, False))
                res["step"].append(bare(model_cfg, tok, tokens, batch, steps, warmup, True))
                res["loop"].append(
                    loop(
                        model_cfg,
                        tok_dir,
                        tmp / "tokens.bin",
                        tmp / "tokens.json",
                        batch,
                        steps,
                        warmup,
                        tmp / f"work{r}",
                    )
                )
        med = {k: statistics.median(v) for k, v in res.items()}
        rows.append(
            {
                "model": name,
                "batch": f"{batch}x{model_cfg.n_positions}",
                "steps": steps,
                "reps": args.reps,
                **{f"{k}_tok_s": round(v, 1) for k, v in med.items()},
                "overhead_vs_fb": round(1 - med["loop"] / med["fb"], 3),
                "overhead_vs_step": round(1 - med["loop"] / med["step"], 3),
                "raw": res,
            }
        )
    print(
        f"{'model':<11} {'batch':>8} {'bare f+b tok/s':>15} {'bare step tok/s':>16} "
        f"{'loop tok/s':>11} {'overhead vs f+b':>16} {'vs step':>8}"
    )
    for r in rows:
        print(
            f"{r['model']:<11} {r['batch']:>8} {r['fb_tok_s']:>15,.0f} {r['step_tok_s']:>16,.0f} "
            f"{r['loop_tok_s']:>11,.0f} {r['overhead_vs_fb']:>16.1%} {r['overhead_vs_step']:>8.1%}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
