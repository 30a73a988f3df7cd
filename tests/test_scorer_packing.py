"""The packed scorer (candidates as prefix trees, each distinct prefix run once) against a plain
reference: one unbatched forward pass per candidate of an unmodified model, log-softmax in fp64."""

import pytest

from evalfixtures import build_model, hand_logprob
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
