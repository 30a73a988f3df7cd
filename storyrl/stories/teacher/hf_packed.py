"""The hf teacher's packed prefill and static decode cache (`teacher.hf.packed`).

After the batch's shared prefix has run once, the rows' own tokens (story and answer line) go
through the model as one sequence of their summed length, not as a rectangle padded to the
longest row: the matmuls see no padding. Position ids restart at the prefix length for every
row, and a flex-attention block mask lets a token see the prefix and the tokens before it in its
own row only, so each row reads what it reads in its full prompt. Blocks of the mask that are
all masked are skipped by the kernel; `torch.compile` of flex attention (done on CUDA) makes it
one fused kernel, while on CPU it runs unfused, materialising the scores.

The rows' keys and values are then laid out as the padded path lays them out (prefix, padding,
row) in a `StaticCache` sized for the reply, and the reply is decoded from it with a mask of
fixed shape: every decode step has the same shapes and tensor addresses, which is what CUDA
graphs need (the decode step is compile-ready; this module does not capture graphs itself).
"""

import torch

ATTENTION = "storyrl_packed"
_compiled = None


def _flex(cuda: bool):
    """torch's flex attention: compiled once on CUDA (the fused kernel), eager elsewhere."""
    global _compiled
    from torch.nn.attention.flex_attention import flex_attention

    if not cuda:
        return flex_attention
    if _compiled is None:
        _compiled = torch.compile(flex_attention)
    return _compiled


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
    """Flex attention for a BlockMask (the packed prefill), transformers' SDPA for any other
    mask (the prefix and the decode steps)."""
    from torch.nn.attention.flex_attention import BlockMask
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if not isinstance(attention_mask, BlockMask):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kw
        )
    gqa = query.shape[1] != key.shape[1]
    out = _flex(query.is_cuda)(
        query, key, value, block_mask=attention_mask, scale=scaling, enable_gqa=gqa
    )
    return out.transpose(1, 2).contiguous(), None


def use_packed_attention(lm) -> None:
    """Switches `lm` to the attention above (SDPA unless handed a block mask)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, _attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)
    lm.set_attn_implementation(ATTENTION)


def block_mask(lengths: list[int], n: int, device):
    """Queries: the rows' tokens packed end to end; keys: the prefix's `n`, then the same
    packed tokens. A query sees the whole prefix and its own row up to itself."""
    from torch.nn.attention.flex_attention import create_block_mask

    total = sum(lengths)
    lens = torch.tensor(lengths, device=device)
    row = torch.repeat_interleave(torch.arange(len(lengths), device=device), lens)

    def mask_mod(b, h, q, kv):
        t = (kv - n).clamp(min=0)
        return (kv < n) | ((row[t] == row[q]) & (t <= q))

    # Compiled on CUDA, as transformers builds its block masks: eager, it would evaluate the
    # whole (rows' tokens)^2 grid at once (1.8 G entries for a step of 360 stories).
    cuda = torch.device(device).type == "cuda"
    return create_block_mask(mask_mod, None, None, total, n + total, device=device, _compile=cuda)


def packed_prefill(lm, rows: list[list[int]], n: int, cache, max_new: int):
    """Runs every row's tokens after the first `n` (whose keys and values `cache` holds, for
    one row) as one packed sequence. Returns the next-token logits of each row's last token
    (rows x vocab), a StaticCache holding prefix, padding and row for each row with room for
    `max_new` more tokens, its 2D mask over the whole cache, and each row's next position."""
    from transformers import StaticCache

    from storyrl.core.hf_compat import cache_kwarg, output_cache

    dev = next(lm.parameters()).device
    tails = [r[n:] for r in rows]
    lens = [len(t) for t in tails]
    b, width = len(rows), max(lens)
    ids = torch.tensor([[t for tail in tails for t in tail]], device=dev)
    pos = torch.cat([torch.arange(n, n + k, device=dev) for k in lens])[None]
    ends = torch.tensor(lens, device=dev).cumsum(0)
    kw = {cache_kwarg(lm): cache} if cache is not None else {}
    out = lm(
        input_ids=ids,
        attention_mask=block_mask(lens, n, dev),
        position_ids=pos,
        use_cache=True,
        logits_to_keep=ends - 1,
        **kw,
    )
    packed = output_cache(out)
    # Row i's tokens go to the last len_i slots before `n + width` (the padded path's layout);
    # the padding slots take any packed token (index 0) and are masked out.
    slot = (
        torch.arange(width, device=dev)[None, :] - (width - torch.tensor(lens, device=dev))[:, None]
    )
    src = (ends - torch.tensor(lens, device=dev))[:, None] + slot
    src = torch.where(slot >= 0, src, torch.zeros_like(src)) + n
    static = StaticCache(config=lm.config, max_cache_len=n + width + max_new)
    for layer, got in zip(static.layers, packed.layers):
        keys = torch.cat(
            [got.keys[0, :, :n][None].expand(b, -1, -1, -1), _gather(got.keys, src)], 2
        )
        vals = torch.cat(
            [got.values[0, :, :n][None].expand(b, -1, -1, -1), _gather(got.values, src)], 2
        )
        layer.lazy_initialization(keys, vals)
        layer.keys[:, :, : n + width].copy_(keys)
        layer.values[:, :, : n + width].copy_(vals)
        layer.cumulative_length.fill_(n + width)
    # Future slots count as seen: the causal mask keeps each step from reading past itself.
    mask = torch.ones(b, n + width + max_new, dtype=torch.long, device=dev)
    mask[:, n : n + width] = (slot >= 0).long()
    nxt_pos = torch.tensor(lens, device=dev)[:, None] + n
    return out.logits[0].float(), static, mask, nxt_pos


def _gather(x: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """x: (1, heads, seq, dim) -> (rows, heads, width, dim), taking positions `src`."""
    rows, width = src.shape
    got = x[0][:, src.reshape(-1)]
    return got.view(x.shape[1], rows, width, x.shape[-1]).transpose(0, 1)
