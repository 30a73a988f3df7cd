"""The paper's teacher setup: an offline vLLM engine on the same GPU as the student.

vLLM is CUDA-only and an optional extra (`pip install storyrl[gpu]`); it is imported when this
backend is built, never when storyrl is imported. The request assembly (engine arguments,
sampling parameters, chat messages) is plain data so it can be checked without vLLM.
"""

from storyrl.teacher.config import TeacherConfig
from storyrl.teacher.rubric import Rubric


def engine_kwargs(cfg: TeacherConfig, seed: int) -> dict:
    v = cfg.vllm
    return {
        "model": cfg.model,
        "dtype": v.dtype,
        "max_model_len": v.max_model_len,
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "enable_prefix_caching": v.enable_prefix_caching,
        "seed": seed,
    }


def sampling_kwargs(cfg: TeacherConfig, seed: int) -> dict:
    return {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": seed}


def conversations(rubric: Rubric, prompts: list[str], continuations: list[str]) -> list[list[dict]]:
    """One conversation per story, each a single user message (the paper's format)."""
    return [[{"role": "user", "content": rubric.render(p, c)}]
            for p, c in zip(prompts, continuations)]


class VLLMBackend:
    name = "vllm"
    server = None  # runs in this process

    def __init__(self, cfg: TeacherConfig, rubric: Rubric, seed: int):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as err:
            raise ImportError(
                "teacher.backend 'vllm' needs vLLM (CUDA only): pip install 'storyrl[gpu]'; "
                "or use the openai, hf or heuristic backend") from err
        self.rubric, self.model = rubric, cfg.model
        self.sampling = sampling_kwargs(cfg, seed)
        self.llm = LLM(**engine_kwargs(cfg, seed))
        self.params = SamplingParams(**self.sampling)

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        outs = self.llm.chat(conversations(self.rubric, prompts, continuations), self.params,
                             use_tqdm=False)
        # A request vLLM could not serve (e.g. longer than max_model_len) has no output text.
        return [o.outputs[0].text if o.outputs else None for o in outs]
