"""Helpers around transformers' models: names that differ between the releases this code
meets, and a faster kernel for GPT-2's activation.

transformers renamed the KV cache of a model's forward and of its outputs from
`past_key_values` to `cache` (5.24 has `cache` and still takes the old name, with a deprecation
warning, until 5.40). The GPU machines may carry an older release (5.17 there) than the one
pyproject pins, so code that hands a cache to a model or reads one back goes through these two
helpers: the newer name where the model knows it, the older one otherwise.
"""

import inspect

import torch


def cache_kwarg(module: torch.nn.Module) -> str:
    """The keyword under which `module`'s forward takes a KV cache."""
    # The signature follows functools.wraps to the real forward (5.24's rename decorator keeps
    # `cache` there); a release that knows only `past_key_values` would swallow `cache` in its
    # **kwargs and silently run without the prefix.
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out):
    """The KV cache a forward returned (`use_cache=True`), under either name; None if none."""
    for name in ("cache", "past_key_values"):
        # ModelOutput is a dict of its set fields; reading it as one skips 5.24's deprecated
        # `past_key_values` property (and its warning).
        if name in out.keys() and out[name] is not None:
            return out[name]
    return None


def fuse_gelu(model) -> int:
    """Swap GPT-2's `gelu_new`, eight elementwise passes in Python, for torch's one fused kernel
    of the same formula (`gelu(approximate="tanh")`); they differ by float rounding. On a CPU
    the eight passes over the MLP's activations cost about as much as a quarter of the trunk.
    This changes the given model in place."""
    from transformers.activations import NewGELUActivation

    swapped = 0
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, name, torch.nn.GELU(approximate="tanh"))
                swapped += 1
    return swapped
