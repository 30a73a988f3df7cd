"""Zero-shot scoring throughput on CPU: one candidate at a time vs batched, in the same run.

Models (random init, built here, nothing downloaded): the default config's tiny GPT-2 (2 layers,
4 heads, 128 dims, 128 positions, vocab 2,000) and GPT-2 small (12 layers, 12 heads, 768 dims,
512 positions, vocab 16,000). Data: the demo
evaluation sets (`storyrl.demo_eval`): BLiMP-format minimal pairs, plus entity tracking and EWoK
items where candidates share a prefix. Modes:

- `one_at_a_time`: one forward pass per candidate (batch size 1, no prefix sharing);
- `official_style`: the official pipeline's computation re-implemented for timing: batches of 64
  items in file order, one padded forward per candidate position, full-vocabulary log-softmax at
  every position, fp32;
- `batched`: our `Scorer` (sorted by length, LM head at scored positions only, shared prefixes
  run once, 64 sequences per pass); `batched_noshare`: the same without prefix sharing;
`batched_256`: with 256 sequences per pass.

Prints items per second (a BLiMP item is one minimal pair), medians over repeats, the ratios to
`one_at_a_time` and to `official_style`, and checks that every mode picks the same candidates.
Writes benchmarks/out/zero_shot.json.

    PYTHONPATH=. python benchmarks/zero_shot.py [--quick]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from storyrl.demo_corpus import generate as demo_corpus
from storyrl.demo_eval import generate as demo_eval
from storyrl.evaluate.results import choose
from storyrl.evaluate.scorer import Scorer
from storyrl.evaluate.tasks import TASKS, read_items
from storyrl.evaluate.zero_shot import data_folder


def build_checkpoint(folder: Path, corpus: Path, layers: int, heads: int, dim: int,
                     vocab: int, positions: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train([str(p) for p in sorted(corpus.glob("*.train"))], trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    # The model keeps the full vocabulary size even if the small corpus gives fewer merges.
    cfg = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=dim, n_layer=layers,
                     n_head=heads, bos_token_id=0, pad_token_id=1, eos_token_id=2)
    GPT2LMHeadModel(cfg).save_pretrained(folder)
    return folder


@torch.inference_mode()
def official_style(scorer: Scorer, groups, batch_items: int = 64) -> list[list[float]]:
    """Per batch of items in file order: one padded full forward per candidate position."""
    model, out = scorer.model, []
    for i in range(0, len(groups), batch_items):
        batch = groups[i:i + batch_items]
        cols = []
        for k in range(len(batch[0])):
            seqs = [g[k] for g in batch]
            width = max(len(s.ids) for s in seqs)
            ids = torch.full((len(seqs), width), scorer.pad_id, dtype=torch.long)
            att = torch.zeros((len(seqs), width), dtype=torch.long)
            msk = torch.zeros((len(seqs), width))
            for r, s in enumerate(seqs):
                ids[r, :len(s.ids)] = torch.tensor(s.ids)
                att[r, :len(s.ids)] = 1
                msk[r, :len(s.ids)] = torch.tensor(s.scored, dtype=torch.float)
            logits = model(input_ids=ids[:, :-1], attention_mask=att[:, :-1]).logits
            logp = F.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
            cols.append((logp * msk[:, 1:]).sum(1).tolist())
        out += [list(x) for x in zip(*cols)]
    return out


def run_mode(mode: str, scorer: Scorer, groups):
    if mode == "official_style":
        return official_style(scorer, groups)
    return scorer.score_groups(groups)


def bench(label: str, ckpt: Path, data: Path, sizes: dict[str, int], repeats: int,
          slow_cap: int | None = None) -> list[dict]:
    """`slow_cap`: score only this many items one at a time (the rate is per item anyway)."""
    scorers = {
        "one_at_a_time": Scorer(ckpt, device="cpu", batch_size=1, share_prefix=False),
    }
    base = scorers["one_at_a_time"]
    scorers["official_style"] = base
    scorers["batched"] = Scorer(ckpt, device="cpu", batch_size=64, model=base.model,
                                tokenizer=base.tokenizer)
    scorers["batched_noshare"] = Scorer(ckpt, device="cpu", batch_size=64, share_prefix=False,
                                        model=base.model, tokenizer=base.tokenizer)
    scorers["batched_256"] = Scorer(ckpt, device="cpu", batch_size=256, model=base.model,
                                    tokenizer=base.tokenizer)
    rows = []
    for task, n in sizes.items():
        items = read_items(TASKS[task], data_folder(data, TASKS[task], "full"))[:n]
        groups = [base.encode_all(zip(it.texts, it.completions)) for it in items]
        n_tok = sum(len(s.ids) for g in groups for s in g)
        choices, times, counted = {}, {m: [] for m in scorers}, {}
        for mode, scorer in scorers.items():
            run_mode(mode, scorer, groups[:8])  # warm-up: lazy inits, allocator
        # Modes interleaved within each repeat, so that load from other jobs hits them alike.
        for _ in range(repeats):
            for mode, scorer in scorers.items():
                part = groups[:slow_cap] if mode == "one_at_a_time" and slow_cap else groups
                t0 = time.perf_counter()
                scores = run_mode(mode, scorer, part)
                times[mode].append(time.perf_counter() - t0)
                choices[mode] = [choose(s) for s in scores]
                counted[mode] = len(part)
        speed = {m: counted[m] / statistics.median(t) for m, t in times.items()}
        k = len(choices["one_at_a_time"])
        same = all(c[:k] == choices["one_at_a_time"] for c in choices.values())
        for mode, v in speed.items():
            rows.append({"model": label, "task": task, "items": counted[mode],
                         "tokens": n_tok, "mode": mode, "items_per_s": v,
                         "x_one_at_a_time": v / speed["one_at_a_time"],
                         "x_official_style": v / speed["official_style"],
                         "same_choices": same})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer items and repeats")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else 3
    tiny = {"blimp": 400, "entity_tracking": 100, "ewok": 200}
    small = {"blimp": 64, "entity_tracking": 24, "ewok": 48}
    if args.quick:
        tiny = {k: v // 4 for k, v in tiny.items()}
        small = {k: v // 4 for k, v in small.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        demo_corpus(tmp / "corpus", words=300_000, seed=0)
        data = tmp / "evaluation_data"
        demo_eval(data, seed=0)
        corpus = tmp / "corpus" / "train_demo"
        rows = bench("tiny (2x128, V=2000)",
                     build_checkpoint(tmp / "tiny", corpus, 2, 4, 128, 2_000, 128),
                     data, tiny, repeats)
        rows += bench("gpt2-small (12x768)",
                      build_checkpoint(tmp / "small", corpus, 12, 12, 768, 16_000, 512),
                      data, small, max(1, repeats - 1), slow_cap=16)
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'model':22} {'task':16} {'items':>5} {'mode':16} {'items/s':>9} "
          f"{'x 1-at-a-time':>13} {'x official':>10} same")
    for r in rows:
        print(f"{r['model']:22} {r['task']:16} {r['items']:5d} {r['mode']:16} "
              f"{r['items_per_s']:9.1f} {r['x_one_at_a_time']:13.1f} "
              f"{r['x_official_style']:10.1f} {r['same_choices']}")
    out = Path(__file__).parent / "out" / "zero_shot.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
