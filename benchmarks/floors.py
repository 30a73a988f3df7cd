"""Each GPU phase's floor on one H200: the time its arithmetic or its memory traffic takes at the
card's peak (or at a stated share of it), from the work the GPU check's JSON records.

The card: 989 dense bf16 TFLOP/s (the check's `args.peak_tflops`, NVIDIA's H200 SXM figure) and
4.8 TB/s of HBM3e bandwidth (NVIDIA's H200 SXM datasheet). A matmul-bound phase's floor is its
FLOPs over the peak times the MFU named in its row; a memory-bound one's (a decode step) is the
bytes it must read over the bandwidth, or its FLOPs over the peak where those take longer.

FLOPs per token: 2 x parameters for a forward, 6 x for a forward and backward (the weights'
matmuls; attention over these short contexts adds about 1%, left out). Where the JSON does not
hold a count the floor needs, the row says which figure is assumed.
"""

from __future__ import annotations

H200_BW = 4.8e12  # bytes/s, NVIDIA H200 SXM datasheet
H200_PEAK = 989e12  # dense bf16 FLOP/s, NVIDIA H200 SXM datasheet (the check's default)
MFU = {"teacher": 1.0, "update": 0.7, "pretrain": 0.4}  # the share of the peak each floor takes


def _keys(source: str, *keys: str) -> list[str]:
    """`file:key.path` for each figure a row reads from the JSON."""
    return [f"{source}:{k}" for k in keys]


def _peak(check: dict) -> float:
    return float((check.get("args") or {}).get("peak_tflops") or H200_PEAK / 1e12) * 1e12


def teacher_step(check: dict, source: str) -> dict | None:
    """The teacher on one RL step's stories (the check's teacher_ab, shared prefix): the rows'
    own tokens through the model once at the peak, the prefix once, and the reply's decode
    steps reading every weight once each (bf16, 2 bytes a parameter)."""
    ab, t = check.get("teacher_ab") or {}, check.get("teacher") or {}
    if not (ab.get("ok") and t.get("params") and ab.get("prompt_tokens")):
        return None
    prefix = sum(ab["shared_prefix_tokens"]) / len(ab["shared_prefix_tokens"])
    rows = ab["stories"] * (ab["prompt_tokens"]["mean"] - prefix)
    flops = 2 * t["params"] * (rows + prefix)
    reply = 6  # teacher.max_tokens: the paper's six reply tokens
    floor = flops / (_peak(check) * MFU["teacher"]) + reply * 2 * t["params"] / H200_BW
    return {
        "phase": "RL teacher, a step",
        "now_s": ab["shared"]["seconds"],
        "floor_s": floor,
        "work": f"{rows:,.0f} tokens after a {prefix:.0f}-token shared prefix through "
        f"{t['params'] / 1e9:.2f}B, {reply} reply tokens",
        "floor_basis": f"2 x params FLOPs a token at {MFU['teacher']:.0%} of the peak; each "
        "decode step reads the bf16 weights once",
        "measured": _keys(
            source,
            "teacher_ab.shared.seconds",
            "teacher_ab.prompt_tokens.mean",
            "teacher_ab.shared_prefix_tokens",
            "teacher.params",
        ),
        "assumed": [],
    }


def sampling_step(check: dict, source: str, prompt_tokens: float) -> dict | None:
    """The student's decode steps of one RL step (max_new_tokens, batch ppo_batch): each step
    reads the fp32 weights and the bf16 KV cache at the mean context, or does 2 x params FLOPs
    a row, whichever takes longer. Kernel launches are not in it (CUDA graphs remove them).
    `prompt_tokens`: the story opening's words times the corpus's measured tokens a word."""
    run, pre, sz = check.get("ppo_after") or {}, check.get("pretrain") or {}, check.get("sizes")
    if not (run.get("ok") and pre.get("params") and sz):
        return None
    m, b, steps = sz["model"], run["batch"], run["sampling"]["max_new_tokens"]
    ctx = prompt_tokens + steps / 2
    kv = b * ctx * m["n_layer"] * 2 * m["n_embd"] * 2
    per = max((4 * pre["params"] + kv) / H200_BW, 2 * pre["params"] * b / _peak(check))
    return {
        "phase": "RL sampling, a step",
        "now_s": run["sample_s"],
        "floor_s": steps * per,
        "work": f"{steps} decode steps of {pre['params'] / 1e6:.0f}M at batch {b}",
        "floor_basis": "a step reads the fp32 weights and the bf16 KV cache at the mean "
        "context once (memory-bound; no kernel launches)",
        "measured": _keys(
            source,
            "ppo_after.sample_s",
            "ppo_after.sampling.max_new_tokens",
            "ppo_after.batch",
            "pretrain.params",
            "sizes.model.n_layer",
            "sizes.model.n_embd",
            "corpus.tokens_per_word",
        ),
        "assumed": [],
    }


def update_step(check: dict, source: str, epochs: int, prompt_tokens: float) -> dict | None:
    """One PPO update: `epochs` forward-backward passes over the batch's real tokens (prompt +
    mean response, no padding), plus the forwards that give the old log-probs and values and
    the reference's log-probs, at MFU["update"]."""
    run, pre = check.get("ppo_after") or {}, check.get("pretrain") or {}
    if not (run.get("ok") and pre.get("params") and run.get("response_tokens_mean")):
        return None
    tokens = run["batch"] * (prompt_tokens + run["response_tokens_mean"])
    flops = (6 * epochs + 2 * 2) * pre["params"] * tokens
    return {
        "phase": "RL update, a step",
        "now_s": run["update_s"],
        "floor_s": flops / (_peak(check) * MFU["update"]),
        "work": f"{epochs} PPO epochs over {tokens:,.0f} tokens, with the old-policy and "
        "reference forwards",
        "floor_basis": f"6 x params FLOPs a token an epoch, 2 x a forward, at "
        f"{MFU['update']:.0%} MFU",
        "measured": _keys(
            source,
            "ppo_after.update_s",
            "ppo_after.batch",
            "ppo_after.response_tokens_mean",
            "pretrain.params",
            "corpus.tokens_per_word",
        ),
        "assumed": [],
    }


def pretraining(check: dict, source: str, run: dict, key: str, tokens: float) -> dict:
    """The whole pretraining run: 6 x params FLOPs a token at MFU["pretrain"]."""
    flops = 6 * run["params"] * tokens
    return {
        "phase": "pretraining",
        "now_s": tokens / run["tokens_per_s_median"],
        "floor_s": flops / (_peak(check) * MFU["pretrain"]),
        "work": f"{tokens / 1e9:.2f}B tokens x 6 x {run['params'] / 1e6:.0f}M FLOP"
        + (f" (now at MFU {run['mfu']:.1%})" if run.get("mfu") else ""),
        "floor_basis": f"at {MFU['pretrain']:.0%} MFU",
        "measured": _keys(source, f"{key}.tokens_per_s_median", f"{key}.params"),
        "assumed": [],
    }


def rows(cfg, check: dict, source: str, pre: dict, pre_key: str, tokens: float) -> list[dict]:
    """The phases whose figures the JSON holds, with now / floor. The student's prompt is the
    config's first opening at the corpus's measured tokens a word."""
    tpw = (check.get("corpus") or {}).get("tokens_per_word")
    prompt = len(cfg.rl.prompts[0].split()) * tpw if tpw else None
    out = [
        teacher_step(check, source),
        sampling_step(check, source, prompt) if prompt else None,
        update_step(check, source, cfg.rl.ppo.ppo_epochs, prompt) if prompt else None,
        pretraining(check, source, pre, pre_key, tokens) if pre.get("params") else None,
    ]
    out = [r for r in out if r]
    for r in out:
        r["ratio"] = r["now_s"] / r["floor_s"]
    return out
