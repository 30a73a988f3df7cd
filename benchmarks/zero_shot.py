"""Zero-shot scoring on CPU: the official-style computation vs our `Scorer`, one optimisation at
a time, side by side in one run.

Model (random init, built here, nothing downloaded): GPT-2 small's shape (12 layers, 12 heads,
768 dims, 512 positions, vocab 16,000; `--tiny` adds the default config's 2x128 model). Data:
the demo evaluation sets (`storyrl.data.demo_eval`), BLiMP format: the first `--per-file` items of
each of its 5 files, in file order (the official batches of 64 items stay within a file, as
nearly all do on the real sets, and so have no padding: the least favourable case for length
sorting). The demo sentences come from
templates: items share more leading tokens than real BLiMP items do (see `prefix_stats`).

`--blimp DIR_OR_GIT` runs the same ladder on real BLiMP (github.com/alexwarstadt/blimp: a folder
of its 67 `*.jsonl` files, or its git directory, read at `HEAD:data/`): the first `--per-file`
pairs of every one of the 67 paradigm files, so all paradigms count alike as in the BabyLM
sets (the files were generated in random order, so their first lines are a fair sample), read
by the same `read_items` as the official format (`sentence_good`, `sentence_bad`, `UID`...).
Official-style batches stay within a file, so they hold `--per-file` items when it is under
64; measured on 4 files x 64 pairs, 1 thread: batches of 8, 16 and 64 items took 14.6, 13.3
and 14.2 s, so a small `--per-file` does not handicap the baseline there (on 2 threads
batches of 8 were 1.25-1.4x slower than 64: read 2-thread ratios with that in mind).
Tokenizer: no GPT-2 tokenizer can be downloaded, so ours
(`storyrl.data.tokenizer.train_tokenizer`, the paper's settings: byte-level BPE, vocabulary
16,000, min frequency 2) is trained on all 134,000
sentences of the 67 files, so that BLiMP's own words split as a tokenizer that has seen them
splits them; its small vocabulary stops BPE at about 4,600 tokens (nearly every word one
token, as GPT-2's and a BabyLM tokenizer keep most of these common words). The model keeps
16,000 output rows, so the LM head costs what the paper's does.

Modes, each adding one thing to the one above it unless said otherwise:

- `official_style`: the official pipeline's computation re-implemented for timing: batches of
  64 items in file order, one padded forward per candidate position, the model's own forward
  (KV cache on), full-vocabulary log-softmax at every position, fp32, inference mode;
- `official_no_grad`: the same under `torch.no_grad` instead of inference mode (alone);
- `official_sorted`: the same computation on candidates sorted by length, 128 per pass;
- `plain`: our scorer unpacked (`pack=False`, no prefix sharing, python GELU): no KV cache,
  the LM head at scored positions only;
- `plain_eager`: `plain` with eager attention instead of SDPA (alone);
- `fused_gelu`: `plain` with torch's fused tanh-GELU;
- `kv_prefix`: + an item's common prefix run once through the KV cache (the previous default);
- `packed`: candidates packed into rows with a block mask, no padding, no sharing;
- `packed_item`: + shared prefixes run once within an item (tree mask);
- `packed_all`: + across items too: the `Scorer` default;
- `packed_all_1thread`: the default on one thread (alone).

Prints items per second (an item is one minimal pair), medians over repeats with the modes
interleaved, the ratio to `official_style` (of medians, and of each mode's fastest repeat),
the largest score difference to it and whether every mode picks the same candidates; the load
average before and after. Writes benchmarks/out/zero_shot.json.

    PYTHONPATH=. python benchmarks/zero_shot.py [--quick] [--tiny]
    PYTHONPATH=. python benchmarks/zero_shot.py --blimp /path/to/blimp --per-file 8 \\
        --threads 1 --modes official_sorted,plain,kv_prefix,packed,packed_item,packed_all
"""

import argparse
import contextlib
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from zero_shot_data import build_checkpoint, real_blimp

from storyrl.core.checkpoints import load_model
from storyrl.data.demo_corpus import generate as demo_corpus
from storyrl.data.demo_eval import generate as demo_eval
from storyrl.evaluate.results import choose
from storyrl.evaluate.scorer import Scorer
from storyrl.evaluate.tasks import TASKS, read_items
from storyrl.evaluate.zero_shot import data_folder


def _official_batch(model, pad_id, seqs):
    """One padded forward of the model as it is, full-vocabulary log-softmax everywhere."""
    width = max(len(s.ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    msk = torch.zeros((len(seqs), width))
    for r, s in enumerate(seqs):
        ids[r, : len(s.ids)] = torch.tensor(s.ids)
        att[r, : len(s.ids)] = 1
        msk[r, : len(s.ids)] = torch.tensor(s.scored, dtype=torch.float)
    logits = model(input_ids=ids[:, :-1], attention_mask=att[:, :-1]).logits
    logp = F.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
    return (logp * msk[:, 1:]).sum(1).tolist()


def official_style(
    model, pad_id, groups, files, batch_items: int = 64, grad_off=torch.inference_mode
):
    """Per batch of items in file order: one padded full forward per candidate position.

    Batches stay within a file (`files`: the file of each item): the official reader runs on
    until the end of the folder, but the real files hold ~1,000 items each, so batches that
    span two files are rare there, while a sample of a few items a file would make most of
    them span files and pad."""
    starts = [i for i in range(len(groups)) if i == 0 or files[i] != files[i - 1]]
    batches = [
        (a, min(a + batch_items, b))
        for a, b in zip(starts, starts[1:] + [len(groups)])
        for a in range(a, b, batch_items)
    ]
    out = []
    with grad_off():
        for a, b in batches:
            batch = groups[a:b]
            cols = [
                _official_batch(model, pad_id, [g[k] for g in batch]) for k in range(len(batch[0]))
            ]
            out += [list(x) for x in zip(*cols)]
    return out


@torch.inference_mode()
def official_sorted(model, pad_id, groups, batch: int = 128):
    """The official computation on all candidates sorted by length, `batch` per pass."""
    flat = [(gi, ci, s) for gi, g in enumerate(groups) for ci, s in enumerate(g)]
    flat.sort(key=lambda x: -len(x[2].ids))
    out = [[0.0] * len(g) for g in groups]
    for i in range(0, len(flat), batch):
        part = flat[i : i + batch]
        for (gi, ci, _), v in zip(part, _official_batch(model, pad_id, [s for *_, s in part])):
            out[gi][ci] = v
    return out


@contextlib.contextmanager
def attention(model, impl: str):
    before = model.config._attn_implementation
    model.set_attn_implementation(impl)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def modes(ckpt: Path, files: list) -> dict:
    """name -> function(groups) -> scores. Two copies of the model: as loaded, and fused."""
    raw = load_model(ckpt, dtype=torch.float32).eval()
    fused = load_model(ckpt, dtype=torch.float32).eval()
    enc = Scorer(ckpt, device="cpu", model=raw, fused_gelu=False)
    tok, pad = enc.tokenizer, enc.pad_id

    def scorer(model, **kw):
        s = Scorer(ckpt, device="cpu", model=model, tokenizer=tok, **kw)
        return s.score_groups

    plain = scorer(raw, pack=False, share_prefix=False, fused_gelu=False)

    def plain_eager(groups):
        with attention(raw, "eager"):
            return plain(groups)

    default = scorer(fused)

    def one_thread(groups):
        with threads(1):
            return default(groups)

    return {
        "official_style": lambda g: official_style(raw, pad, g, files),
        "official_no_grad": lambda g: official_style(raw, pad, g, files, grad_off=torch.no_grad),
        "official_sorted": lambda g: official_sorted(raw, pad, g),
        "plain": plain,
        "plain_eager": plain_eager,
        "fused_gelu": scorer(fused, pack=False, share_prefix=False),
        "kv_prefix": scorer(fused, pack=False),
        "packed": scorer(fused, share_prefix=False),
        "packed_item": scorer(fused, share_prefix="item"),
        "packed_all": default,
        "packed_all_1thread": one_thread,
    }, enc


def prefix_stats(groups) -> dict:
    """Input positions in all, and distinct prefixes within items and across all of them."""

    def distinct(seqs):
        return len({s.ids[: t + 1] for s in seqs for t in range(len(s.ids) - 1)})

    flat = [s for g in groups for s in set(g)]
    return {
        "positions": sum(len(s.ids) - 1 for g in groups for s in g),
        "distinct_within_items": sum(distinct(set(g)) for g in groups),
        "distinct_across_items": distinct(flat),
    }


def bench(
    label: str, ckpt: Path, data: Path, per_file: int, repeats: int, only: list[str] | None = None
) -> list[dict]:
    """`data`: a folder of BLiMP-format files (one UID a file)."""
    items = read_items(TASKS["blimp"], data)
    by_file: dict[str, list] = {}
    for it in items:  # one UID per file; file order kept
        by_file.setdefault(it.uid, []).append(it)
    items = [it for part in by_file.values() for it in part[:per_file]]
    runs, enc = modes(ckpt, [it.uid for it in items])
    if only:
        runs = {m: f for m, f in runs.items() if m == "official_style" or m in only}
    groups = [enc.encode_all(zip(it.texts, it.completions)) for it in items]
    stats = prefix_stats(groups)
    print(f"{label}: {len(items)} items, {stats}", flush=True)
    for run in runs.values():
        run(groups[:8])  # warm-up: lazy inits, allocator
    times, scores = {m: [] for m in runs}, {}
    # Modes interleaved within each repeat, in a new order each time, so that load from other
    # jobs hits them alike.
    rng = random.Random(0)
    for r in range(repeats):
        for mode in rng.sample(list(runs), len(runs)):
            run = runs[mode]
            t0 = time.perf_counter()
            scores[mode] = run(groups)
            times[mode].append(time.perf_counter() - t0)
        print(
            f"  repeat {r + 1}: " + ", ".join(f"{m} {t[-1]:.2f}s" for m, t in times.items()),
            flush=True,
        )
    ref = scores["official_style"]
    want = [choose(s) for s in ref]
    base, best = statistics.median(times["official_style"]), min(times["official_style"])
    rows = []
    for mode, t in times.items():
        diff = max(abs(a - b) for x, y in zip(scores[mode], ref) for a, b in zip(x, y))
        rows.append(
            {
                "model": label,
                "task": "blimp",
                "items": len(items),
                "mode": mode,
                "seconds": statistics.median(t),
                "all_seconds": t,
                "items_per_s": len(items) / statistics.median(t),
                "x_official_style": base / statistics.median(t),
                # the least disturbed repeat: other jobs only ever slow a run down
                "x_official_style_best": best / min(t),
                "max_abs_diff": diff,
                "same_choices": [choose(s) for s in scores[mode]] == want,
                **stats,
            }
        )
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer items and repeats")
    ap.add_argument("--tiny", action="store_true", help="also the default config's tiny model")
    ap.add_argument(
        "--per-file",
        type=int,
        default=64,
        help="BLiMP items from each file (64: whole official batches)",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--blimp",
        type=Path,
        default=None,
        metavar="DIR_OR_GIT",
        help="real BLiMP instead of the demo sets: a folder of its 67 *.jsonl files "
        "(or with data/), or a git directory of alexwarstadt/blimp",
    )
    ap.add_argument(
        "--modes",
        default=None,
        help="comma-separated modes to run beside official_style (default: all)",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "zero_shot.json")
    args = ap.parse_args()
    repeats, per_file = (1, 8) if args.quick else (args.repeats, args.per_file)
    only = args.modes.split(",") if args.modes else None
    if args.threads:
        torch.set_num_threads(args.threads)
    load = [os.getloadavg()]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        if args.blimp:
            data, ckpt = real_blimp(args.blimp, tmp, per_file, 16_000)
            rows += bench(
                "gpt2-small real BLiMP",
                build_checkpoint(ckpt, None, 12, 12, 768, 16_000, 512),
                data,
                per_file,
                repeats,
                only,
            )
        else:
            demo_corpus(tmp / "corpus", words=300_000, seed=0)
            demo_eval(tmp / "evaluation_data", seed=0)
            data = data_folder(tmp / "evaluation_data", TASKS["blimp"], "full")
            corpus = tmp / "corpus" / "train_demo"
            if args.tiny:
                rows += bench(
                    "tiny (2x128, V=2000)",
                    build_checkpoint(tmp / "tiny", corpus, 2, 4, 128, 2_000, 128),
                    data,
                    per_file,
                    repeats,
                    only,
                )
            rows += bench(
                "gpt2-small (12x768)",
                build_checkpoint(tmp / "small", corpus, 12, 12, 768, 16_000, 512),
                data,
                per_file,
                repeats,
                only,
            )
    load.append(os.getloadavg())
    print(
        f"torch threads: {torch.get_num_threads()}, cores: {os.cpu_count()}, load average "
        f"(1/5/15 min) before {load[0]} after {load[1]}, {time.perf_counter() - t0:.0f} s"
    )
    print(
        f"{'model':24} {'mode':20} {'items':>5} {'items/s':>9} {'x official':>10} "
        f"{'x (best)':>8} {'max|diff|':>9} same"
    )
    for r in rows:
        print(
            f"{r['model']:24} {r['mode']:20} {r['items']:5d} {r['items_per_s']:9.1f} "
            f"{r['x_official_style']:10.2f} {r['x_official_style_best']:8.2f} "
            f"{r['max_abs_diff']:9.1e} {r['same_choices']}"
        )
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "load_average": load,
                "blimp": str(args.blimp) if args.blimp else None,
                "per_file": per_file,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
