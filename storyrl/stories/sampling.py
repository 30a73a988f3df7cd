"""The student writes stories: batched sampling with HF `generate`, cut after the first EOS;
and the seeding that makes a run's or an evaluation's samples repeatable."""

import logging
import random
from dataclasses import dataclass

import numpy as np
import torch

from storyrl.config import SamplingConfig


@dataclass
class Rollouts:
    prompts: list[str]
    queries: list[torch.Tensor]
    """Prompt token ids, one 1-D tensor per story (no BOS: the paper's tokenizer adds none)."""
    responses: list[torch.Tensor]
    """Sampled token ids, up to and including the first EOS."""
    texts: list[str]
    """Decoded continuations: what the teacher is shown and whose words the length bonus counts;
    special tokens dropped unless asked to keep them (then a trailing `</s>` when EOS was
    sampled, as the authors' code decoded)."""
    logprobs: list[torch.Tensor] | None = None
    """Per-token log-probs under the sampling distribution (only when asked for)."""


log = logging.getLogger(__name__)


def decode_options(setting, device: torch.device, static_cache: bool | None = None) -> dict:
    """`generate` keywords for `SamplingConfig.compile` on `device`: a static cache with a
    compiled forward, or {} for the dynamic cache. `static_cache=True` with compiling off keeps
    the static cache in eager mode (the tests compare it with the dynamic one)."""
    from transformers import CompileConfig

    compiled = setting is True or (setting == "auto" and device.type == "cuda")
    if not (compiled or static_cache):
        return {}
    if not compiled:
        return {"cache_implementation": "static", "disable_compile": True}
    cc = CompileConfig()  # inductor, CUDA graphs ("reduce-overhead"), graph breaks allowed
    # transformers compiles the decode step by itself on CUDA only; the flag asks for it on
    # any device (private, in 5.17 and 5.24 alike).
    cc._compile_all_devices = device.type != "cuda"
    return {"cache_implementation": "static", "compile_config": cc}


def batch_prompts(prompts: list[str], batch_size: int) -> list[str]:
    """The batch cycles through the prompts in order (one prompt: the paper's batch)."""
    return [prompts[i % len(prompts)] for i in range(batch_size)]


def sample(
    lm,
    tokenizer,
    prompts: list[str],
    cfg: SamplingConfig,
    train_mode: bool = False,
    with_logprobs: bool = False,
    static_cache: bool | None = None,
) -> Rollouts:
    """Sample one continuation per prompt. Sampling draws from torch's global RNG; the texts are
    decoded with or without special tokens as `cfg.keep_special_tokens` says. The decode step
    is compiled as `cfg.compile` says (`decode_options`)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    device = next(lm.parameters()).device
    queries = [torch.tensor(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    limit = getattr(lm.config, "n_positions", None) or getattr(
        lm.config, "max_position_embeddings", None
    )
    longest = max(len(q) for q in queries)
    if limit is not None and longest + cfg.max_new_tokens > limit:
        raise ValueError(
            f"sampling.max_new_tokens ({cfg.max_new_tokens}) + the longest prompt ({longest} tokens) "
            f"exceed the model's {limit} positions: shorten the prompt or max_new_tokens"
        )
    chunk = cfg.chunk_size or len(queries)
    was_training = lm.training
    lm.train(train_mode)
    responses, logprobs = [], []
    try:
        for s in range(0, len(queries), chunk):
            part = queries[s : s + chunk]
            width = max(len(q) for q in part)
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for j, q in enumerate(part):  # left padding, as TRL pads for generation
                ids[j, width - len(q) :] = q
                attn[j, width - len(q) :] = 1
            out = _generate(
                lm,
                cfg,
                decode_options(cfg.compile, device, static_cache),
                dict(
                    input_ids=ids.to(device),
                    attention_mask=attn.to(device),
                    do_sample=True,
                    temperature=cfg.temperature,
                    top_k=cfg.top_k,
                    top_p=cfg.top_p,
                    max_new_tokens=cfg.max_new_tokens,
                    min_length=-1,
                    num_beams=1,
                    pad_token_id=eos,
                    eos_token_id=eos,
                    output_scores=with_logprobs,
                    return_dict_in_generate=True,
                ),
            )
            new = out.sequences[:, width:].cpu()
            if with_logprobs:
                # `scores` are after temperature/top-k/top-p: the distribution sampled from.
                logits = torch.stack(out.scores, dim=1).float().cpu()
                lp = torch.gather(torch.log_softmax(logits, -1), 2, new.unsqueeze(-1)).squeeze(-1)
            for j in range(len(part)):
                row = new[j]
                hits = (row == eos).nonzero()
                n = int(hits[0, 0]) + 1 if len(hits) else len(row)
                responses.append(row[:n])
                if with_logprobs:
                    logprobs.append(lp[j, :n])
    finally:
        lm.train(was_training)
    texts = tokenizer.batch_decode(responses, skip_special_tokens=not cfg.keep_special_tokens)
    return Rollouts(list(prompts), queries, responses, texts, logprobs if with_logprobs else None)


def _generate(lm, cfg, options: dict, kw: dict):
    """`lm.generate(**kw, **options)`; with `compile: auto`, a compiled decode that fails
    (a torch or driver the compiler does not handle) warns once and samples again, from the same
    RNG state, with the dynamic cache, as does every later call on this model."""
    fallback = cfg.compile == "auto" and "compile_config" in options
    if fallback and getattr(lm, "_storyrl_eager_decode", False):
        options, fallback = {}, False
    rng = (torch.get_rng_state(), torch.cuda.get_rng_state_all()) if fallback else None
    try:
        with torch.no_grad():
            return lm.generate(**kw, **options)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - any compiler failure; `true` re-raises it
        if not fallback:
            raise
        log.warning(
            "sampling: the compiled decode step failed (%s: %s); sampling with the dynamic "
            "cache from now on (rl.sampling.compile: false skips the attempt)",
            type(err).__name__,
            str(err).splitlines()[0] if str(err) else "",
        )
        lm._storyrl_eager_decode = True
        torch.set_rng_state(rng[0])
        torch.cuda.set_rng_state_all(rng[1])
        with torch.no_grad():
            return lm.generate(**kw)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
