"""The `vllm` backend: request assembly checked without vLLM; a real run where vLLM and a GPU are
present (skipped otherwise, saying which is missing)."""

import importlib.util
import sys
from pathlib import Path

import pytest

from storyrl.teacher import TeacherConfig, make_teacher
from storyrl.teacher.rubric import load_rubric
from storyrl.teacher.vllm_backend import conversations, engine_kwargs, sampling_kwargs

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


def test_request_assembly_is_the_papers():
    cfg = TeacherConfig(backend="vllm")
    assert engine_kwargs(cfg, seed=42) == {
        "model": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "bfloat16", "max_model_len": 1024,
        "gpu_memory_utilization": 0.25, "enable_prefix_caching": True, "seed": 42}
    assert sampling_kwargs(cfg, seed=42) == {"temperature": 0.2, "max_tokens": 6, "seed": 42}
    rubric = load_rubric(cfg.template)
    conv = conversations(rubric, [PROMPT, PROMPT], [" a.", " b."])
    assert conv == [[{"role": "user", "content": rubric.render(PROMPT, " a.")}],
                    [{"role": "user", "content": rubric.render(PROMPT, " b.")}]]
    # Every request starts with the same long rubric prefix: that is what prefix caching reuses.
    shared = conv[0][0]["content"].split("Story opening:")[0]
    assert len(shared) > 1000 and conv[1][0]["content"].startswith(shared)


def test_config_reaches_engine():
    cfg = TeacherConfig(backend="vllm", model="/models/x", temperature=0.0, max_tokens=4,
                        vllm={"max_model_len": 2048, "gpu_memory_utilization": 0.5,
                              "dtype": "float16", "enable_prefix_caching": False})
    assert engine_kwargs(cfg, 7) == {"model": "/models/x", "dtype": "float16",
                                     "max_model_len": 2048, "gpu_memory_utilization": 0.5,
                                     "enable_prefix_caching": False, "seed": 7}
    assert sampling_kwargs(cfg, 7) == {"temperature": 0.0, "max_tokens": 4, "seed": 7}


def test_importing_storyrl_does_not_need_vllm():
    import subprocess
    code = ("import storyrl.teacher, storyrl.reward, storyrl.cli, sys; "
            "print('vllm' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True)
    assert out.stdout.split() == ["False", "False"]


def _why_no_vllm() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (CUDA-only optional extra: pip install 'storyrl[gpu]')"
    import torch
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    return None


@pytest.mark.skipif(_why_no_vllm() is not None, reason=str(_why_no_vllm()))
def test_vllm_runs_for_real(tmp_path):
    # A tiny random chat model built here (no download), served by a real vLLM engine.
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_chat import build_tiny_chat_model
    folder = build_tiny_chat_model(tmp_path / "tiny", [PROMPT], hidden_size=128, heads=2)
    cfg = TeacherConfig(backend="vllm", model=str(folder), max_failure_share=1.0,
                        vllm={"dtype": "float32", "max_model_len": 2048,
                              "gpu_memory_utilization": 0.2})
    t = make_teacher(cfg, seed=0)
    conts = [" a fox ran.", " it rained.", " she sang.", " the end."]
    js = t.score([PROMPT] * 4, conts)
    assert len(js) == 4 and not any(j.failed_call for j in js)
    assert [j.reply for j in t.score([PROMPT] * 4, conts)] == [j.reply for j in js]  # seeded
