"""The paper's teacher setup: an offline vLLM engine on the same GPU as the student.

vLLM is an optional extra (`pip install -c requirements/lock-gpu.txt -e '.[gpu]'`, CUDA; on a
CPU host, vLLM's CPU build: `make vllm-venv`); it is imported when this backend is built, never
when storyrl is imported. The request assembly (engine arguments, sampling parameters, chat
messages), the GPU memory share and the handling of requests the engine refuses are plain Python,
so they are checked without vLLM; tests/stories/test_vllm_engine.py runs them on the real engine.
"""

import logging
from collections.abc import Callable

from storyrl.config import ConfigError, TeacherConfig, VLLMConfig
from storyrl.stories.rubric import Rubric

log = logging.getLogger(__name__)
GIB = 2**30


def memory_fraction(
    v: VLLMConfig, total_bytes: int, free_bytes: int | None = None, device: str = "the GPU"
) -> float:
    """The share of the device's memory vLLM may take: `gpu_memory_gib` over the device's total,
    or `gpu_memory_utilization` as given. A GiB budget that does not fit the device (or what is
    free on it now) is a ConfigError that names both numbers."""
    if v.gpu_memory_gib is None:
        return v.gpu_memory_utilization
    want = v.gpu_memory_gib * GIB
    if want > total_bytes:
        raise ConfigError(
            f"teacher.vllm.gpu_memory_gib={v.gpu_memory_gib:g}: {device} has "
            f"{total_bytes / GIB:.1f} GiB in all; lower it (the teacher needs its weights plus "
            "the KV cache of one batch) or use a larger GPU"
        )
    if free_bytes is not None and want > free_bytes:
        raise ConfigError(
            f"teacher.vllm.gpu_memory_gib={v.gpu_memory_gib:g}: only {free_bytes / GIB:.1f} GiB "
            f"of {device}'s {total_bytes / GIB:.1f} GiB are free (other processes hold the rest)"
        )
    return want / total_bytes


def _device_memory() -> tuple[int, int, str]:
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(
            "teacher.vllm.gpu_memory_gib: measured against a CUDA GPU, and torch sees none "
            "(without a GPU give teacher.vllm.gpu_memory_utilization; vLLM's CPU build sizes "
            "its KV cache by VLLM_CPU_KVCACHE_SPACE)"
        )
    free, total = torch.cuda.mem_get_info()
    return total, free, torch.cuda.get_device_name()


def engine_kwargs(
    cfg: TeacherConfig, seed: int, memory: tuple[int, int, str] | None = None
) -> dict:
    """`memory`: (total bytes, free bytes, device name), measured on the GPU when the config
    gives the teacher's memory in GiB and none is passed."""
    v = cfg.vllm
    if v.gpu_memory_gib is not None and memory is None:
        memory = _device_memory()
    share = memory_fraction(v, *memory) if memory else v.gpu_memory_utilization
    return {
        "model": cfg.model,
        "dtype": v.dtype,
        "max_model_len": v.max_model_len,
        "gpu_memory_utilization": share,
        "enable_prefix_caching": v.enable_prefix_caching,
        "seed": seed,
    }


def sampling_kwargs(cfg: TeacherConfig, seed: int) -> dict:
    return {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": seed}


def conversations(rubric: Rubric, prompts: list[str], continuations: list[str]) -> list[list[dict]]:
    """One conversation per story, each a single user message (the paper's format)."""
    return [
        [{"role": "user", "content": rubric.render(p, c)}] for p, c in zip(prompts, continuations)
    ]


def refusals() -> tuple[type[Exception], ...]:
    """The exceptions by which vLLM refuses one request of a call: `VLLMValidationError` in
    vLLM 0.30 (a `VLLMClientError`, not a ValueError), ValueError in older releases. Imported
    here, not at the top: storyrl imports without vLLM."""
    try:
        from vllm.exceptions import VLLMValidationError
    except ImportError:
        return (ValueError,)
    return (VLLMValidationError, ValueError)


def chat_each(chat: Callable[[list], list[str | None]], convs: list) -> list[str | None]:
    """`chat(convs)` for a batch in which a request the engine refuses fails alone.

    vLLM validates every request of a `chat()` call and raises for the whole call when one is
    refused (`refusals()`: a prompt of max_model_len tokens or more, ...). Then the batch is split
    in halves and each half tried again, down to the refused request, which gets None (a failed
    call): one bad story costs about 2·log2(batch) extra calls, never the step. Any other
    exception (engine dead, out of memory) is not about one story and propagates."""
    try:
        return list(chat(convs))
    except refusals() as err:
        if len(convs) == 1:
            log.warning("teacher: the engine refused one request: %s", str(err)[:300])
            return [None]
    mid = len(convs) // 2
    return chat_each(chat, convs[:mid]) + chat_each(chat, convs[mid:])


def serve(
    chat: Callable[[list], list[str | None]],
    convs: list,
    n_tokens: Callable[[list], int] | None = None,
    max_model_len: int | None = None,
) -> list[str | None]:
    """One reply per conversation, None where it failed. With `n_tokens` (the engine's chat
    template and tokenizer), a prompt the engine would refuse is not sent at all (it would refuse
    the whole call): vLLM 0.30 needs room for one output token, so a prompt of `max_model_len`
    tokens or more. `chat_each` catches what the count misses."""
    out: list[str | None] = [None] * len(convs)
    send = list(range(len(convs)))
    if n_tokens is not None and max_model_len is not None:
        lengths = [n_tokens(c) for c in convs]
        send = [i for i in send if lengths[i] < max_model_len]
        if len(send) < len(convs):
            log.warning(
                "teacher: %d of %d stories leave no room for a reply within max_model_len=%d "
                "with the rubric (longest %d tokens); they count as failed calls",
                len(convs) - len(send),
                len(convs),
                max_model_len,
                max(lengths),
            )
    for i, reply in zip(send, chat_each(chat, [convs[i] for i in send]) if send else []):
        out[i] = reply
    return out


class VLLMBackend:
    name = "vllm"

    def __init__(self, cfg: TeacherConfig, rubric: Rubric, seed: int):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as err:
            raise ImportError(
                "teacher.backend 'vllm' needs vLLM: pip install -c "
                "requirements/lock-gpu.txt -e '.[gpu]' in the checkout, or run in the conda env "
                "envs/gpu.yaml (profiles/slurm does); on a CPU host `make vllm-venv` builds a "
                "venv with vLLM's CPU build; or use the openai, hf or heuristic backend"
            ) from err
        self.rubric, self.model = rubric, cfg.model
        self.sampling = sampling_kwargs(cfg, seed)
        kwargs = engine_kwargs(cfg, seed)
        log.info(
            "teacher: vLLM takes %.1f%% of the GPU's memory", 100 * kwargs["gpu_memory_utilization"]
        )
        self.llm = LLM(**kwargs)
        self.params = SamplingParams(**self.sampling)
        self.max_model_len = cfg.vllm.max_model_len
        self.tokenizer = self.llm.get_tokenizer()
        self._count = self._n_tokens

    def _chat(self, convs: list) -> list[str | None]:
        outs = self.llm.chat(convs, self.params, use_tqdm=False)
        # A request vLLM could not serve has no output text.
        return [o.outputs[0].text if o.outputs else None for o in outs]

    def _n_tokens(self, conv: list) -> int:
        enc = self.tokenizer.apply_chat_template(
            conv, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return len(enc["input_ids"])

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        convs = conversations(self.rubric, prompts, continuations)
        if self._count is not None and convs:
            try:
                self._count(convs[0])
            except Exception as err:  # a tokenizer without HF's chat API: bisection alone
                log.warning(
                    "teacher: cannot count prompt tokens (%s); over-long stories are "
                    "found by the engine's refusal",
                    err,
                )
                self._count = None
        return serve(self._chat, convs, self._count, self.max_model_len)
