"""The student's sampling, side by side: the dynamic KV cache (a Python step per token, eager)
against a static cache with a compiled decode step (`rl.sampling.compile`), on the same
batch, interleaved, after warm-up calls (which carry the compile time, reported apart).

    python benchmarks/sampling_throughput.py                        # tiny GPT-2, CPU-sized
    python benchmarks/sampling_throughput.py --model gpt2-small --batch 360 --new-tokens 90

`compare_sampling()` is the function the GPU check calls; on a CPU the static side is the eager
static cache unless --compile true (compiling on a CPU takes a minute and rarely pays).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from storyrl.config import ModelConfig, SamplingConfig
from storyrl.pretrain.train import build_model
from storyrl.stories.sampling import sample
from storyrl.testing import numbered_tokenizer

MODELS = {
    "tiny": (ModelConfig(n_layer=2, n_head=4, n_embd=128, n_positions=128, dropout=0.1), 2000),
    "gpt2-small": (ModelConfig(n_layer=12, n_head=12, n_embd=768, n_positions=512), 16000),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare_sampling(
    model_cfg: ModelConfig,
    vocab: int,
    batch: int = 360,
    new_tokens: int = 90,
    prompt_tokens: int = 20,
    reps: int = 3,
    warmup: int = 2,
    train_mode: bool = True,
    compile="auto",
    device: str | None = None,
) -> dict:
    """Seconds per `sample()` call of `batch` stories with the dynamic cache and with
    `SamplingConfig(compile=compile)` (on a CPU with `auto`: the eager static cache), medians of
    `reps` interleaved calls after `warmup` calls each; `ratio` = dynamic / static. In eval mode
    also whether both drew the same tokens for one seed."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tok = numbered_tokenizer(vocab)
    torch.manual_seed(0)
    lm = build_model(model_cfg, tok).to(dev)
    prompts = [" ".join(f"w{i}" for i in range(prompt_tokens))] * batch
    sides = {
        "dynamic": (SamplingConfig(max_new_tokens=new_tokens, compile=False), None),
        "static": (
            SamplingConfig(max_new_tokens=new_tokens, compile=compile),
            True,  # on a CPU with `auto`: the eager static cache
        ),
    }
    compiled = compile is True or (compile == "auto" and dev.type == "cuda")

    def call(name, seed=0):
        cfg, static = sides[name]
        torch.manual_seed(seed)
        _sync(dev)
        t0 = time.perf_counter()
        ro = sample(lm, tok, prompts, cfg, train_mode=train_mode, static_cache=static)
        _sync(dev)
        return time.perf_counter() - t0, ro

    first = {}
    for name in sides:  # warm-up: the first static call compiles
        first[name] = call(name)[0]
        for _ in range(warmup - 1):
            call(name)
    times = {name: [] for name in sides}
    for _ in range(reps):
        for name in sides:
            times[name].append(call(name)[0])
    same = None
    if not train_mode:
        same = [r.tolist() for r in call("dynamic", 7)[1].responses] == [
            r.tolist() for r in call("static", 7)[1].responses
        ]
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    return {
        "device": str(dev),
        "batch": batch,
        "new_tokens": new_tokens,
        "prompt_tokens": prompt_tokens,
        "train_mode": train_mode,
        "static_side": "static cache + compiled decode" if compiled else "static cache, eager",
        "dynamic_s": round(med["dynamic"], 4),
        "static_s": round(med["static"], 4),
        "ratio": round(med["dynamic"] / med["static"], 3),
        "first_call_s": {k: round(v, 2) for k, v in first.items()},
        "same_tokens_eval": same,
        "peak_gpu_mem_gb": round(mem, 2) if mem is not None else None,
        "raw": times,
    }


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="tiny", choices=list(MODELS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=90)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--eval-mode", action="store_true", help="no dropout; checks equal tokens")
    ap.add_argument("--compile", default="auto", choices=["auto", "true", "false"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/out/sampling_throughput.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    model_cfg, vocab = MODELS[args.model]
    res = compare_sampling(
        model_cfg,
        vocab,
        batch=args.batch,
        new_tokens=args.new_tokens,
        reps=args.reps,
        train_mode=not args.eval_mode,
        compile={"auto": "auto", "true": True, "false": False}[args.compile],
    )
    print(
        f"{args.model}: {res['batch']} stories x {res['new_tokens']} tokens on {res['device']}: "
        f"dynamic {res['dynamic_s']:.3f} s, {res['static_side']} {res['static_s']:.3f} s, "
        f"ratio {res['ratio']:.2f}x (first calls {res['first_call_s']}); "
        f"same tokens in eval mode: {res['same_tokens_eval']}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, **res}, indent=2))


if __name__ == "__main__":
    main()
