"""The `vllm` backend without vLLM: request assembly, the GPU memory share, and the handling of
refused requests with a stand-in engine. tests/stories/test_vllm_engine.py runs the backend on the
real engine (vLLM's CPU build, in the venv of `make vllm-venv`)."""

import sys
from pathlib import Path

import pytest

from storyrl.config import ConfigError
from storyrl.stories.rubric import load_rubric
from storyrl.stories.teacher import TeacherConfig
from storyrl.stories.teacher.vllm_backend import conversations, engine_kwargs, sampling_kwargs
from storyrl.testing import build_tiny_chat_model

ROOT = Path(__file__).resolve().parents[2]
GIB = 2**30

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


def test_request_assembly_is_the_papers():
    cfg = TeacherConfig(backend="vllm")
    assert engine_kwargs(cfg, seed=42) == {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "dtype": "bfloat16",
        "max_model_len": 1024,
        "gpu_memory_utilization": 0.25,
        "enable_prefix_caching": True,
        "seed": 42,
    }
    assert sampling_kwargs(cfg, seed=42) == {"temperature": 0.2, "max_tokens": 6, "seed": 42}
    rubric = load_rubric(cfg.template)
    conv = conversations(rubric, [PROMPT, PROMPT], [" a.", " b."])
    assert conv == [
        [{"role": "user", "content": rubric.render(PROMPT, " a.")}],
        [{"role": "user", "content": rubric.render(PROMPT, " b.")}],
    ]
    # Every request starts with the same long rubric prefix: that is what prefix caching reuses.
    shared = conv[0][0]["content"].split("Story opening:")[0]
    assert len(shared) > 1000 and conv[1][0]["content"].startswith(shared)


def test_config_reaches_engine():
    cfg = TeacherConfig(
        backend="vllm",
        model="/models/x",
        temperature=0.0,
        max_tokens=4,
        vllm={
            "max_model_len": 2048,
            "gpu_memory_utilization": 0.5,
            "dtype": "float16",
            "enable_prefix_caching": False,
        },
    )
    assert engine_kwargs(cfg, 7) == {
        "model": "/models/x",
        "dtype": "float16",
        "max_model_len": 2048,
        "gpu_memory_utilization": 0.5,
        "enable_prefix_caching": False,
        "seed": 7,
    }
    assert sampling_kwargs(cfg, 7) == {"temperature": 0.0, "max_tokens": 4, "seed": 7}


def test_importing_storyrl_does_not_need_vllm():
    import subprocess

    code = (
        "import storyrl.stories.teacher, storyrl.stories.reward, storyrl.cli, sys; "
        "print('vllm' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=True,
    )
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- refused requests
class LengthCheckedEngine:
    """A small real chat engine with vLLM 0.30's length rule (InputProcessor._validate_prompt_len):
    every conversation of a call goes through the model's chat template and tokenizer, and one
    prompt of `max_model_len` tokens or more (no room for an output token) refuses the whole call
    with vLLM's message. vLLM 0.30 raises its VLLMValidationError, older releases a ValueError:
    this stand-in raises the latter (tests/stories/test_vllm_real.py raises the former, from vLLM's
    own check); otherwise the tiny model answers each conversation greedily."""

    def __init__(self, folder, max_model_len):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(folder)
        self.lm = AutoModelForCausalLM.from_pretrained(folder).eval()
        self.max_model_len, self.calls = max_model_len, []

    def n_tokens(self, conv):
        return len(
            self.tok.apply_chat_template(
                conv, add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )

    def __call__(self, convs):
        import torch

        self.calls.append(len(convs))
        for conv in convs:
            n = self.n_tokens(conv)
            if n > self.max_model_len:
                raise ValueError(
                    f"The decoder prompt (length {n}) is longer than the maximum "
                    f"model length of {self.max_model_len}. Make sure that "
                    "`max_model_len` is no smaller than the number of text tokens."
                )
            if n == self.max_model_len:
                raise ValueError(
                    f"The decoder prompt (length {n}) plus the number of requested output "
                    f"tokens (at least 1) is longer than the maximum model length of {n}."
                )
        out = []
        for conv in convs:
            ids = self.tok.apply_chat_template(
                conv,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
            )
            with torch.no_grad():
                gen = self.lm.generate(
                    **ids, max_new_tokens=3, do_sample=False, pad_token_id=self.tok.pad_token_id
                )
            out.append(self.tok.decode(gen[0, ids["input_ids"].shape[1] :]))
        return out


@pytest.fixture(scope="module")
def tiny_engine_folder(tmp_path_factory):
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny_engine"), [PROMPT])


def test_one_over_long_story_is_one_failed_reply_not_a_failed_batch(tiny_engine_folder):
    from storyrl.stories.teacher.vllm_backend import chat_each

    rubric = load_rubric(TeacherConfig().template)
    conts = [f" a fox number {i} ran home." for i in range(12)]
    conts[5] = " and then" * 400  # far past the context
    convs = conversations(rubric, [PROMPT] * 12, conts)
    probe = LengthCheckedEngine(tiny_engine_folder, 10**9)
    normal = max(probe.n_tokens(c) for i, c in enumerate(convs) if i != 5)
    engine = LengthCheckedEngine(tiny_engine_folder, max_model_len=normal + 10)
    with pytest.raises(ValueError, match="longer than the maximum model length"):
        engine(convs)  # what VLLMBackend met before: the whole step died
    engine.calls.clear()
    got = chat_each(engine, convs)
    assert got[5] is None
    good = [c for i, c in enumerate(convs) if i != 5]
    assert [r for i, r in enumerate(got) if i != 5] == engine(good)
    assert all(isinstance(r, str) for i, r in enumerate(got) if i != 5)
    # Bisection: about 2 log2(12) calls, and no story is answered twice.
    assert len(engine.calls) - 1 <= 2 * 4 + 1
    assert sum(n for n in engine.calls[:-1] if n) >= 11


def test_over_long_stories_are_not_sent_when_the_tokenizer_counts_them(tiny_engine_folder):
    from storyrl.stories.teacher.vllm_backend import serve

    rubric = load_rubric(TeacherConfig().template)
    conts = [f" a fox number {i} ran home." for i in range(6)]
    conts[2] = conts[4] = " and then" * 400
    convs = conversations(rubric, [PROMPT] * 6, conts)
    probe = LengthCheckedEngine(tiny_engine_folder, 10**9)
    limit = max(probe.n_tokens(c) for i, c in enumerate(convs) if i not in (2, 4)) + 10
    engine = LengthCheckedEngine(tiny_engine_folder, max_model_len=limit)
    got = serve(engine, convs, engine.n_tokens, limit)
    assert engine.calls == [4]  # one call, the over-long stories left out
    assert [r is None for r in got] == [False, False, True, False, True, False]
    assert serve(engine, convs[2:3], engine.n_tokens, limit) == [None]


def test_a_prompt_of_exactly_max_model_len_tokens_is_not_sent(tiny_engine_folder):
    from storyrl.stories.teacher.vllm_backend import serve

    rubric = load_rubric(TeacherConfig().template)
    convs = conversations(rubric, [PROMPT] * 3, [" a fox ran.", " it rained a lot.", " she sang."])
    probe = LengthCheckedEngine(tiny_engine_folder, 10**9)
    limit = probe.n_tokens(convs[1])  # vLLM 0.30 refuses it: no room for one output token
    assert all(probe.n_tokens(c) < limit for c in (convs[0], convs[2]))
    engine = LengthCheckedEngine(tiny_engine_folder, max_model_len=limit)
    got = serve(engine, convs, engine.n_tokens, limit)
    assert engine.calls == [2]  # sent once, without the story the engine would refuse
    assert [r is None for r in got] == [False, True, False]


def test_an_engine_failure_that_is_not_about_one_request_propagates():
    from storyrl.stories.teacher.vllm_backend import chat_each

    def dead(convs):
        raise RuntimeError("EngineDeadError: the engine core died")

    with pytest.raises(RuntimeError, match="engine core died"):
        chat_each(dead, [[{"role": "user", "content": "x"}]] * 4)


# --------------------------------------------------------------------------- GPU memory in GiB
def test_teacher_memory_in_gib_becomes_the_devices_share():
    from storyrl.stories.teacher.vllm_backend import memory_fraction

    cfg = TeacherConfig(backend="vllm", vllm={"gpu_memory_gib": 24})
    assert memory_fraction(cfg.vllm, 80 * GIB) == pytest.approx(0.3)
    assert memory_fraction(cfg.vllm, 48 * GIB, free_bytes=47 * GIB) == pytest.approx(0.5)
    kw = engine_kwargs(cfg, 42, memory=(40 * GIB, 39 * GIB, "A100-40GB"))
    assert kw["gpu_memory_utilization"] == pytest.approx(0.6)
    # The fraction stays an alternative (and the default, the paper's 25%).
    assert (
        engine_kwargs(TeacherConfig(backend="vllm"), 42, memory=(40 * GIB, 39 * GIB, "x"))[
            "gpu_memory_utilization"
        ]
        == 0.25
    )


def test_teacher_memory_that_does_not_fit_is_a_clear_error():
    from storyrl.stories.teacher.vllm_backend import memory_fraction

    v = TeacherConfig(backend="vllm", vllm={"gpu_memory_gib": 24}).vllm
    with pytest.raises(ConfigError, match=r"gpu_memory_gib=24: L4 has 22.0 GiB in all"):
        memory_fraction(v, 22 * GIB, device="L4")
    with pytest.raises(
        ConfigError,
        match=r"gpu_memory_gib=24: only 20.0 GiB of the GPU's "
        r"40.0 GiB are free",
    ):
        memory_fraction(v, 40 * GIB, free_bytes=20 * GIB)
    with pytest.raises(ValueError, match="give gpu_memory_gib or gpu_memory_utilization"):
        TeacherConfig(vllm={"gpu_memory_utilization": None})


def test_paper_teacher_memory_fits_llama_8b_and_a_40gb_card():
    from storyrl.config import load
    from storyrl.stories.teacher.vllm_backend import memory_fraction

    cfg = load(ROOT / "config" / "paper.yaml")
    v = cfg.teacher.vllm
    assert v.gpu_memory_gib is not None, "config/paper.yaml gives the teacher's memory in GiB"
    weights = 8.03e9 * 2  # Llama-3.1-8B in bf16
    kv_per_token = 32 * 8 * 128 * 2 * 2  # layers x KV heads x head dim x (K, V) x bf16
    # One max_model_len request, and the whole batch of 360 beside it: each holds the story,
    # the reply and a partly filled block (~170 tokens); the rubric prefix is cached once.
    kv = (v.max_model_len + cfg.rl.batch_size * 170) * kv_per_token
    overhead = 2.5 * GIB  # activations of the profile run, CUDA graphs, the CUDA context
    assert v.gpu_memory_gib * GIB >= weights + kv + overhead
    share = memory_fraction(v, 40 * GIB)  # an A100-40GB: the student keeps the rest
    assert share <= 0.65
