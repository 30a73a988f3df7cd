"""The student's decode step: a static KV cache (and a compiled forward) samples the tokens the
dynamic cache samples, for a fixed seed in fp32 (eval mode)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, CompileConfig

from rl_toys import make_checkpoint
from storyrl.config import SamplingConfig
from storyrl.stories.sampling import _generate, decode_options, sample

# Prompts of different lengths: the batch is left-padded, so the static cache holds padding.
PROMPTS = ["once upon a time", "let me tell you a long magical tale", "the king", "in a land"] * 3


@pytest.fixture(autouse=True)
def one_thread():
    # Ops on a 32-wide model are far shorter than a scheduler slice: on a busy CPU a second
    # thread makes every op wait for it (~25x slower here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    path = make_checkpoint(tmp_path_factory.mktemp("student") / "ckpt", n_positions=128)
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


def draw(student, cfg, seed=0, **kw):
    tok, lm = student
    torch.manual_seed(seed)
    return sample(lm, tok, PROMPTS, cfg, train_mode=False, with_logprobs=True, **kw)


def assert_same(a, b):
    assert [r.tolist() for r in a.responses] == [r.tolist() for r in b.responses]
    assert a.texts == b.texts
    for x, y in zip(a.logprobs, b.logprobs):
        assert torch.allclose(x, y, atol=1e-5)


def test_static_cache_samples_the_dynamic_caches_tokens(student):
    cfg = SamplingConfig(max_new_tokens=60, compile=False)
    dynamic = draw(student, cfg)
    assert_same(draw(student, cfg, static_cache=True), dynamic)
    assert max(len(r) for r in dynamic.responses) > 20  # stories long enough to tell apart
    assert draw(student, cfg, seed=1).texts != dynamic.texts  # the seed matters


def test_what_each_setting_asks_of_generate():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert decode_options("auto", cpu) == {} and decode_options(False, cuda) == {}
    assert decode_options(False, cpu, static_cache=True) == {
        "cache_implementation": "static",
        "disable_compile": True,
    }
    for setting, device in (("auto", cuda), (True, cuda), (True, cpu)):
        opts = decode_options(setting, device)
        assert opts["cache_implementation"] == "static"
        assert opts["compile_config"]._compile_all_devices == (device.type == "cpu")


def test_a_failed_compile_falls_back_to_the_same_draws(student):
    """`auto`: a compiler that fails costs one warning; the batch is sampled again with the
    dynamic cache from the same RNG state, and later calls skip the attempt."""
    tok, lm = student

    def broken(gm, example_inputs, **options):
        raise RuntimeError("no compiler here")

    cc = CompileConfig(backend=broken)
    cc._compile_all_devices = True
    cfg = SamplingConfig(max_new_tokens=20, compile="auto")
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    kw = dict(input_ids=ids, do_sample=True, max_new_tokens=20, pad_token_id=2, eos_token_id=2)
    torch.manual_seed(3)
    want = lm.generate(**kw)
    torch.manual_seed(3)
    got = _generate(lm, cfg, {"cache_implementation": "static", "compile_config": cc}, kw)
    assert torch.equal(got, want) and lm._storyrl_eager_decode
    with pytest.raises(Exception, match="no compiler here"):
        _generate(
            lm,
            cfg.model_copy(update={"compile": True}),
            {"cache_implementation": "static", "compile_config": cc},
            kw,
        )
    del lm._storyrl_eager_decode


def test_compiled_decode_samples_the_dynamic_caches_tokens(student):
    """torch.compile of the decode step on CPU (slow: a minute of compiling)."""
    torch._dynamo.reset()
    dynamic = draw(student, SamplingConfig(max_new_tokens=40, compile=False))
    assert_same(draw(student, SamplingConfig(max_new_tokens=40, compile=True)), dynamic)
