"""The hf teacher's shared prefix (teacher.hf.share_prefix): the rubric's KV cache once per batch,
then each story. Against the full prompt run alone, without padding or cache tricks: the same
reply logits within fp32 rounding and the same greedy replies."""

import pytest
import torch

from storyrl.stories.teacher import TeacherConfig, make_teacher
from storyrl.stories.teacher.hf_backend import common_prefix_len
from storyrl.testing import build_tiny_chat_model

PROMPT = "Once upon a time, in a faraway land,"
CONTS = [
    " there lived a fox. He was happy and he ran and ran into the deep dark woods.",
    " a storm came!",
    " a girl sang 3 songs to the moon, and the moon sang back.",
    "",  # an empty story: the row is almost all prefix
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # Grouped keys and values (2 query heads to 1), as Llama 3's teacher has them.
    folder = tmp_path_factory.mktemp("tiny_prefix")
    return build_tiny_chat_model(folder, [PROMPT, *CONTS], seed=1, kv_heads=1)


def backend(folder, share: bool, temperature=0.0, max_tokens=6, packed=False):
    cfg = TeacherConfig(
        backend="hf",
        model=str(folder),
        temperature=temperature,
        max_tokens=max_tokens,
        max_failure_share=1.0,
        hf={
            "device": "cpu",
            "dtype": "float32",
            "batch_size": 8,
            "share_prefix": share,
            "packed": packed,
        },
    )
    return make_teacher(cfg, seed=5).backend


def forward_shapes(b):
    """The input shapes of every forward call while `b` replies to the test batch, the batch's
    rows and their common prefix's length."""
    seen = []
    b.lm.register_forward_pre_hook(
        lambda mod, args, kw: seen.append(kw["input_ids"].shape), with_kwargs=True
    )
    rows = b.encode([PROMPT] * len(CONTS), CONTS)
    b.generate_shared(rows)
    return seen, rows, common_prefix_len(rows)


def full_prompt_greedy(lm, row: list[int], steps: int, eos: int):
    """The reference: one prompt, no padding, no cache; the whole sequence every step."""
    ids, toks, logits = list(row), [], []
    with torch.no_grad():
        for _ in range(steps):
            out = lm(input_ids=torch.tensor([ids])).logits[0, -1].float()
            logits.append(out)
            toks.append(int(out.argmax()))
            if toks[-1] == eos:
                break
            ids.append(toks[-1])
    return toks, torch.stack(logits)


def test_common_prefix_is_computed_from_the_token_ids():
    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    # Every row keeps its last token out of the prefix (it must run to give logits).
    assert common_prefix_len([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert common_prefix_len([[1, 2, 3]]) == 2
    assert common_prefix_len([[7, 2], [1, 2]]) == 0


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_shared_prefix_gives_the_full_prompts_logits_and_greedy_replies(folder, packed):
    shared = backend(folder, share=True, packed=packed)
    rows = shared.encode([PROMPT] * len(CONTS), CONTS)
    n = common_prefix_len(rows)
    # The rubric (and the story's opening) is most of every prompt.
    assert n > 0.5 * max(len(r) for r in rows) and len({len(r) for r in rows}) > 1
    new, logits = shared.generate_shared(rows, keep_logits=True)
    eos = shared.tok.eos_token_id
    for i, row in enumerate(rows):
        ref_toks, ref_logits = full_prompt_greedy(shared.lm, row, shared.cfg.max_tokens, eos)
        got = new[i, : len(ref_toks)].tolist()
        assert got == ref_toks
        torch.testing.assert_close(logits[i, : len(ref_toks)], ref_logits, atol=1e-4, rtol=1e-4)
    # Through the teacher's own entry point, the replies equal the old full-prompt path's.
    full = backend(folder, share=False)
    assert shared.replies([PROMPT] * len(CONTS), CONTS) == full.replies(
        [PROMPT] * len(CONTS), CONTS
    )


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_sampled_replies_match_the_full_path_for_a_seed(folder, packed):
    """At the paper's temperature both paths draw from the same distribution with the same RNG
    calls: with logits equal to rounding, the replies are the same."""
    prompts = [PROMPT] * len(CONTS)
    a = backend(folder, share=True, temperature=0.2, packed=packed).replies(prompts, CONTS)
    b = backend(folder, share=False, temperature=0.2).replies(prompts, CONTS)
    assert a == b


def test_prefix_runs_once_per_batch(folder):
    """The first forward call holds the prefix for one row only; the next holds each row's
    rest (the prefix is not run again)."""
    seen, rows, n = forward_shapes(backend(folder, share=True))
    assert seen[0] == (1, n)
    assert seen[1] == (len(rows), max(len(r) for r in rows) - n)
    assert all(s == (len(rows), 1) for s in seen[2:])


def test_packed_prefill_runs_the_rows_without_padding(folder):
    """The packed path's second forward holds every row's own tokens end to end (their summed
    length, no padding); the decode steps then read one token a row."""
    seen, rows, n = forward_shapes(backend(folder, share=True, packed=True))
    assert seen[0] == (1, n)
    assert seen[1] == (1, sum(len(r) - n for r in rows))
    assert all(s == (len(rows), 1) for s in seen[2:])


def test_packed_needs_the_shared_prefix():
    with pytest.raises(ValueError, match="packed: needs share_prefix"):
        TeacherConfig(backend="hf", hf={"share_prefix": False, "packed": True})
