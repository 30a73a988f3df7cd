"""The GPU check's teacher: a randomly initialised model of Llama-3.1-8B-Instruct's shape (no
weights reach the GPU machine), fed prompts of Llama 3's lengths, through the `hf` backend with
and without the shared prefix.

Llama 3's lengths without Llama 3's tokenizer: the teacher reads the student's tokenizer (the
demo corpus's BPE, padded to 16,000 entries), which splits the rubric into ~700 tokens where
Llama 3's tokenizer makes ~353 (counted with a public Llama 3 tokenizer). So the
check's rubric is the shipped one cut, word by word from the top of its instructions, until the
chat-templated prompt around the story is `prefix_tokens` (353) tokens under the check's
tokenizer; the criteria, the story slots and the answer line stay. The stories of the A/B phase
are corpus text cut to 85-145 tokens (story opening included), drawn uniformly; in the PPO
phases they are what the student writes (the opening plus <= 90 sampled tokens of the same
tokenizer, so the teacher reads exactly the student's token count). Compute per token is the
model's; only the token counts matter for time, and the JSON reports the counts reached."""

from __future__ import annotations

import re
import time
from pathlib import Path

from common import REPO, setup_paths

setup_paths()

# Llama-3.1-8B-Instruct's shape (config.json of the release).
LLAMA_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
LLAMA_TINY = dict(LLAMA_8B, hidden_size=64, intermediate_size=128, num_hidden_layers=2)
LLAMA_TINY.update(num_attention_heads=4, num_key_value_heads=2, vocab_size=512)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SHIPPED = REPO / "config" / "prompts" / "teacher_rubric.txt"


def random_teacher(tok_dir: Path, shape: dict, device: str):
    """A chat model of the given shape with random weights; its tokenizer is the student's with
    a chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **shape,
    )
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            lm = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    return tok, lm.eval()


def rubric_tokens(tok, text: str, prompt: str) -> int:
    """Tokens of the chat prompt around the story: the whole prompt minus the story's own."""
    from storyrl.stories.rubric import Rubric

    chat = tok.apply_chat_template(
        [{"role": "user", "content": Rubric("x", text, "").render(prompt, "")}],
        tokenize=False,
        add_generation_prompt=True,
    )
    enc = lambda s: len(tok(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    return enc(chat) - enc(prompt)


def length_matched_rubric(tok, prompt: str, target: int, out: Path) -> tuple[Path, int]:
    """The shipped rubric cut from the top of its instructions (or padded with a filler
    sentence) until `rubric_tokens` is `target` or just above it; written to `out`."""
    # Without the template's leading Jinja2 comment: a cut through it would show its text.
    text = re.sub(r"^\{#.*?#\}\n?", "", SHIPPED.read_text(), flags=re.S)
    cut = text.index("Story opening:")
    words, tail = text[:cut].split(" "), text[cut:]
    build = lambda k: " ".join(words[len(words) - k :]) + tail if k else tail  # noqa: E731
    lo, hi = 0, len(words)
    if rubric_tokens(tok, build(hi), prompt) >= target:
        while lo < hi:  # the fewest words from the end that reach the target
            mid = (lo + hi) // 2
            if rubric_tokens(tok, build(mid), prompt) >= target:
                hi = mid
            else:
                lo = mid + 1
        body = build(lo)
    else:
        body = text
        while rubric_tokens(tok, body, prompt) < target:
            body = "Be fair. " + body
    out.write_text(body)
    return out, rubric_tokens(tok, body, prompt)


def synthetic_stories(tok, tokens_bin: Path, meta: dict, prompt: str, n: int, lo: int, hi: int):
    """`n` continuations whose story (opening + continuation) is lo..hi tokens, uniformly drawn;
    text from the tokenized corpus."""
    import numpy as np

    rng = np.random.default_rng(0)
    stream = np.memmap(tokens_bin, dtype=meta["dtype"], mode="r")
    head = len(tok(prompt, add_special_tokens=False)["input_ids"])
    conts = []
    for length in rng.integers(lo, hi + 1, size=n):
        start = int(rng.integers(0, len(stream) - 400))
        ids = [int(t) for t in stream[start : start + 400] if t != tok.eos_token_id]
        # At least a few tokens of story: the smoke test's tiny tokenizer spends many on the opening.
        keep = max(4, int(length) - head)
        conts.append(" " + tok.decode(ids[:keep], skip_special_tokens=True).strip())
    return conts


def teacher_config(template: Path, batch: int, share: bool, packed: bool = False):
    from storyrl.stories.teacher import TeacherConfig

    # The paper's sampling and failure policy: a reply without scores counts 0.5 and the run
    # goes on (a random teacher replies noise).
    return TeacherConfig(
        backend="hf",
        model="random-llama-3.1-8b-shape",
        template=str(template),
        temperature=0.2,
        max_tokens=6,
        on_failure="default",
        hf={"batch_size": batch, "share_prefix": share, "packed": packed},
    )


def make_scorer(
    tok, lm, template: Path, batch: int, share: bool, max_new_tokens: int, packed: bool = False
):
    """The teacher + reward scorer the RL loop and the story evaluation call. `packed` switches
    `lm`'s attention to the packed path's (SDPA still, for every mask but a block mask)."""
    from storyrl.config import RewardConfig
    from storyrl.stories.rubric import load_rubric
    from storyrl.stories.scoring import TeacherScorer
    from storyrl.stories.teacher import Teacher
    from storyrl.stories.teacher.hf_backend import HFBackend

    tcfg = teacher_config(template, batch, share, packed)
    backend = HFBackend(tcfg, load_rubric(str(template)), 42, model=lm, tokenizer=tok)
    reward = RewardConfig()
    return TeacherScorer(
        Teacher(backend, backend.rubric, tcfg, None, reward.weights), reward, max_new_tokens
    )


def teacher_ab(scorers: dict, prompts: list[str], conts: list[str], repeats: int = 3) -> dict:
    """The same prompts through each backend (shared prefix, full prompts): seconds (median of
    `repeats` after a warm-up batch), peak memory, and how many replies agree."""
    import numpy as np
    from common import cuda_reset, peak_gb, timed

    from storyrl.stories.teacher.hf_backend import common_prefix_len

    out, replies = {}, {}
    for name, scorer in scorers.items():
        be = scorer.teacher.backend
        be.replies(prompts[:8], conts[:8])  # warm-up: kernels, allocator
        cuda_reset()
        got = {}
        sec = timed(lambda: got.update(r=be.replies(prompts, conts)), repeats)  # noqa: B023
        replies[name] = got["r"]
        out[name] = {"seconds": round(sec, 3), "peak_gpu_mem_gb": peak_gb()}
    be = next(iter(scorers.values())).teacher.backend
    rows = be.encode(prompts, conts)
    bs = be.cfg.hf.batch_size
    prefix = [common_prefix_len(rows[i : i + bs]) for i in range(0, len(rows), bs)]
    lengths = np.array([len(r) for r in rows])
    story = np.array(
        [len(be.tok(p + c, add_special_tokens=False)["input_ids"]) for p, c in zip(prompts, conts)]
    )
    names = list(replies)
    same = np.mean([a == b for a, b in zip(replies[names[0]], replies[names[-1]])])
    first, last = out[names[0]]["seconds"], out[names[-1]]["seconds"]
    return {
        **out,
        "stories": len(prompts),
        "batch": bs,
        "speedup": round(last / first, 2) if first else None,
        "same_replies_share": round(float(same), 4),
        "prompt_tokens": {
            "mean": float(lengths.mean()),
            "min": int(lengths.min()),
            "max": int(lengths.max()),
        },
        "story_tokens": {
            "mean": float(story.mean()),
            "min": int(story.min()),
            "max": int(story.max()),
        },
        "shared_prefix_tokens": prefix,
    }


def build_teacher(work: Path, sz: dict, device: str, info: dict):
    """The random teacher, the length-matched rubric and both scorers; `info` gets the facts."""
    import json

    from storyrl.config import PAPER_PROMPT

    t0 = time.perf_counter()
    tok, lm = random_teacher(work / "tok", sz["teacher_shape"], device)
    template, n = length_matched_rubric(tok, PAPER_PROMPT, sz["rubric_tokens"], work / "rubric.txt")
    scorers = {
        name: make_scorer(
            tok, lm, template, sz["teacher_batch"], name == "shared", sz["max_new_tokens"]
        )
        for name in ("shared", "full")
    }
    meta = json.loads((work / "tokens.json").read_text())
    info.update(
        teacher="random init, Llama-3.1-8B shape (no weights on this machine)",
        weights="random",
        params=sum(p.numel() for p in lm.parameters()),
        dtype=str(next(lm.parameters()).dtype),
        rubric_tokens=n,
        rubric_tokens_target=sz["rubric_tokens"],
        rubric_tokens_shipped=rubric_tokens(tok, SHIPPED.read_text(), PAPER_PROMPT),
        batch=sz["teacher_batch"],
        build_s=round(time.perf_counter() - t0, 1),
    )
    return tok, lm, template, scorers, meta
