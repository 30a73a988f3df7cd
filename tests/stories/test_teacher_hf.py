"""The `hf` backend with a tiny randomly initialised chat model built here (no download): the
exact text that reaches the model is the rubric message inside the model's chat template."""

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from storyrl.stories.rubric import load_rubric
from storyrl.stories.teacher import TeacherConfig, make_teacher
from storyrl.testing import build_tiny_chat_model

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
CONTS = [
    " there lived a fox. He was happy.",
    " there was a {curly} storm! Rain fell.",
    " a girl sang 3 songs.",
]


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny_teacher"), [PROMPT, *CONTS])


@pytest.mark.parametrize("share", [False, True])
def test_exact_prompt_reaches_model(tiny_chat_model, share):
    cfg = TeacherConfig(
        backend="hf",
        model=str(tiny_chat_model),
        max_failure_share=1.0,
        hf={"device": "cpu", "batch_size": 8, "share_prefix": share},
    )
    teacher = make_teacher(cfg, seed=3)
    backend = teacher.backend
    seen = []  # the inputs of every forward call of the model
    backend.lm.register_forward_pre_hook(
        lambda mod, args, kw: seen.append(
            (kw["input_ids"].clone(), kw.get("attention_mask", torch.ones_like(kw["input_ids"])))
        ),
        with_kwargs=True,
    )
    js = teacher.score([PROMPT] * 3, CONTS)

    rubric = load_rubric(cfg.template)
    ids, mask = seen[0]
    if share:  # the common prefix once, then each row's rest: rows are prefix + rest
        prefix, (ids, mask) = ids[0], seen[1]
        ids = torch.cat([prefix.expand(len(ids), -1), ids], dim=1)
        mask = mask.clone()  # the prefix's mask columns are already in front
        seen = seen[1:]
    assert ids.shape[0] == 3
    for row, m, cont in zip(ids, mask, CONTS):
        # Written out by hand from storyrl.testing.CHAT_TEMPLATE, not through apply_chat_template.
        expected = f"<s><|user|>\n{rubric.render(PROMPT, cont)}</s>\n<|assistant|>\n"
        real = row[m.bool()].tolist()
        assert backend.tok.decode(real, skip_special_tokens=False) == expected
        assert real == backend.tok(expected, add_special_tokens=False)["input_ids"]
        assert real.count(backend.tok.bos_token_id) == 1  # no second BOS from the tokenizer
    # One forward pass per new token (KV cache): at most max_tokens of them.
    assert 1 <= len(seen) <= cfg.max_tokens
    assert all(not j.failed_call and j.reply for j in js)
    # Same seed, same replies; the identity names the model and the sampling.
    again = make_teacher(cfg, seed=3).score([PROMPT] * 3, CONTS)
    assert [j.reply for j in again] == [j.reply for j in js]
    assert teacher.identity["backend"] == "hf"
    assert teacher.identity["sampling"] == {"temperature": 0.2, "max_tokens": 6, "seed": 3}


def test_model_without_chat_template_is_refused(tiny_chat_model, tmp_path):
    tok = PreTrainedTokenizerFast.from_pretrained(tiny_chat_model)
    tok.chat_template = None
    tok.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="has no chat template"):
        make_teacher(TeacherConfig(backend="hf", model=str(tmp_path)), seed=0)


def test_scoring_leaves_the_global_rng_alone(tiny_chat_model):
    """The teacher seeds its own sampling; the student's stream (RL sampling draws from torch's
    global RNG) must go on as if the teacher had not run, or every RL step would sample from
    the same RNG state."""
    import torch

    cfg = TeacherConfig(
        backend="hf", model=str(tiny_chat_model), max_failure_share=1.0, hf={"device": "cpu"}
    )
    teacher = make_teacher(cfg, seed=3)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    teacher.score([PROMPT] * 3, CONTS)
    assert torch.equal(torch.rand(4), expected)
