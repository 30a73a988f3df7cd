"""The packed scorer (candidates as prefix trees, each distinct prefix run once) against a plain
reference: one unbatched forward pass per candidate of an unmodified model, log-softmax in fp64."""

import pytest
import torch

from evalfixtures import build_model, hand_logprob
from storyrl.core.hf_compat import cache_kwarg, output_cache
from storyrl.evaluate.results import choose
from storyrl.evaluate.scorer import Scorer

# (texts, completions): lengths from 1 to ~25 tokens; prefixes shared within items and across
# them ("the cat"); a repeated candidate; a candidate that is a prefix of another; one token.
ITEMS = [
    (["the cat sleeps .", "the cat sleep ."], None),
    (["the cats sleep .", "the cats sleeps ."], None),
    (["a dog runs and the dogs run .", "a dogs runs and the dog run ."], None),
    (
        ["A robin is a bird. A bird can fly.", "A robin is a bird. A bird can swim."],
        [" A bird can fly.", " A bird can swim."],
    ),
    (
        [
            "Box 0 contains the apple",
            "Box 0 contains the apple, Box 1 contains the key",
            "Box 0 contains the key",
            "Box 0 contains the apple",
        ],
        [" the apple", " the apple, Box 1 contains the key", " the key", " the apple"],
    ),
    (["a", "the"], None),  # "a" is one token
    (
        [
            "The chef saw a wug . The chef said that the wug was wuggy . wuggity wuggyness",
            "The chef saw a wug . The chef said that the wug was wuggity . wuggyness",
        ],
        [" the wug was wuggy . wuggity wuggyness", " the wug was wuggity . wuggyness"],
    ),
    (["the cat sleeps .", "the dog sleeps ."], None),  # the same text as in item 0
]
PAIRS = [list(zip(t, c or t)) for t, c in ITEMS]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("packing") / "tiny"
    model, tok = build_model(folder)
    want = [[hand_logprob(model, tok, t, c) for t, c in g] for g in PAIRS]
    return folder, tok, want


SETTINGS = {
    "default": {},
    "share_within_items": {"share_prefix": "item"},
    "no_sharing": {"share_prefix": False},
    "one_candidate_a_row": {"pack_len": 1, "batch_size": 1},  # shared prefixes split over rows
    "small_rows_and_passes": {"pack_len": 12, "batch_size": 2},
    "python_gelu": {"fused_gelu": False},
    "unpacked": {"pack": False},
    "unpacked_kv_prefix": {"pack": False, "min_shared": 1},
}


@pytest.mark.parametrize("name", [*SETTINGS, "eager_attention"])
def test_same_scores_and_choices_as_a_plain_forward(ckpt, name):
    folder, tok, want = ckpt
    scorer = Scorer(folder, device="cpu", **SETTINGS.get(name, {}))
    if name == "eager_attention":
        scorer.model.set_attn_implementation("eager")
    groups = [scorer.encode_all(g) for g in PAIRS]
    assert len({len(s.ids) for g in groups for s in g}) > 8  # varied lengths, down to 1 token
    got = scorer.score_groups(groups)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-4)
    assert [choose(s) for s in got] == [choose(s) for s in want]
    assert got[4][0] == got[4][3]  # identical candidates of an item: an exact tie
    assert got[0][0] == pytest.approx(got[7][0], abs=1e-5)
    assert len(groups[5][0].ids) == 1 and got[5][0] == 0.0  # one token: nothing is predicted
    flat = scorer.score([s for g in groups for s in g])
    assert flat == pytest.approx([v for g in got for v in g], abs=1e-5)


def test_each_distinct_prefix_runs_once(ckpt):
    """All candidates fit in one row: the trunk sees each distinct input prefix once and the
    LM head runs once per prefix whose next token is scored (the unpacked scorer pads and
    reruns shared prefixes)."""
    folder, tok, _ = ckpt
    scorer = Scorer(folder, device="cpu")
    groups = [scorer.encode_all(g) for g in PAIRS]
    seqs = {s for g in groups for s in g}
    prefixes = {s.ids[: t + 1] for s in seqs for t in range(len(s.ids) - 1)}
    heads = {s.ids[: t + 1] for s in seqs for t in range(len(s.ids) - 1) if s.scored[t + 1]}
    assert len(prefixes) < sum(len(s.ids) - 1 for g in groups for s in g)
    seen = {"trunk": 0, "head": 0}
    model = scorer.model
    hooks = [
        model.transformer.wte.register_forward_pre_hook(
            lambda m, a: seen.__setitem__("trunk", seen["trunk"] + a[0].numel())
        ),
        model.lm_head.register_forward_pre_hook(
            lambda m, a: seen.__setitem__("head", seen["head"] + a[0].shape[0])
        ),
    ]
    try:
        scorer.score_groups(groups)
    finally:
        for h in hooks:
            h.remove()
    assert seen == {"trunk": len(prefixes), "head": len(heads)}
    # GPT-2's python GELU became torch's fused kernel (the unfused model is the reference above).
    assert not any(type(m).__name__ == "NewGELUActivation" for m in model.modules())


def test_share_prefix_must_be_known(ckpt):
    with pytest.raises(ValueError, match="share_prefix: 'items'"):
        Scorer(ckpt[0], device="cpu", share_prefix="items")


class _Output517(dict):
    """A trunk's output as transformers 5.17 named it: the cache is `past_key_values`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"'BaseModelOutputWithPast' has no attribute '{name}'") from None

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)


class _Trunk517(torch.nn.Module):
    """GPT-2's trunk with 5.17's keyword and output field for the KV cache (the GPU machine's
    release; 5.24 renamed both to `cache`). 5.17 swallows an unknown `cache=` in **kwargs and
    runs without the prefix; here it is refused, so the mistake cannot pass unseen."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids=None, past_key_values=None, use_cache=None, **kw):
        if set(kw) - {"attention_mask", "position_ids"}:
            raise TypeError(
                f"5.17's trunk takes no {sorted(set(kw) - {'attention_mask', 'position_ids'})}"
            )
        if past_key_values is not None:
            kw[cache_kwarg(self.inner)] = past_key_values
        out = self.inner(input_ids=input_ids, use_cache=use_cache, **kw)
        found = {k: out[k] for k in ("cache", "past_key_values") if k in out.keys()}
        res = _Output517(last_hidden_state=out[0])
        if use_cache:
            res["past_key_values"] = next(iter(found.values()))
        return res


def test_kv_prefix_with_the_older_cache_name(ckpt):
    """The unpacked scorer with a shared KV prefix against a model speaking 5.17's names (the
    GPU check's zero-shot phase died reading `out.cache` there): the same scores as the plain
    reference."""
    folder, tok, want = ckpt
    scorer = Scorer(folder, device="cpu", pack=False, min_shared=1)
    scorer.model.transformer = _Trunk517(scorer.model.transformer)
    assert cache_kwarg(scorer.model.base_model) == "past_key_values"
    groups = [scorer.encode_all(g) for g in PAIRS]
    got = scorer.score_groups(groups)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-4)


def test_cache_names_of_this_release(ckpt):
    """The installed release's own names, read back through the helpers."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(ckpt[0]).eval()
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        out = model.base_model(input_ids=ids, use_cache=True)
        cache = output_cache(out)
        assert cache is not None and cache.get_seq_length() == 3
        step = model.base_model(
            input_ids=ids[:, -1:] * 0 + 8, use_cache=True, **{cache_kwarg(model.base_model): cache}
        )
        full = model.base_model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    assert torch.allclose(step[0][:, -1], full[0][:, -1], atol=1e-5)
