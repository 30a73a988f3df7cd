"""Config sections of the teacher and of the reward built from its scores."""

from typing import Literal

from pydantic import Field, model_validator

from storyrl.config.base import Section


class VLLMConfig(Section):
    """Offline vLLM engine on the local GPU (the paper's setup)."""

    dtype: str = "bfloat16"
    """Weights and activations dtype (paper: bf16)."""
    max_model_len: int = Field(1024, ge=64)
    """Context length of the engine (paper: 1024; the rubric and a 90-token story fit)."""
    gpu_memory_utilization: float | None = Field(0.25, gt=0, le=1)
    """Share of the GPU's memory vLLM may take (paper: 25% of an 80 GB A100, the student trains
    beside it); ignored when `gpu_memory_gib` is set."""
    gpu_memory_gib: float | None = Field(None, gt=0)
    """GPU memory for vLLM in GiB, turned into the share of the device's total when the engine
    starts (an error names both numbers if it does not fit); the same budget on a 40, 48 or
    80 GB card. When set, it replaces `gpu_memory_utilization`."""
    enable_prefix_caching: bool = True
    """Reuse the KV cache of the rubric prefix that every request shares."""

    @model_validator(mode="after")
    def _some_memory_setting(self):
        if self.gpu_memory_utilization is None and self.gpu_memory_gib is None:
            raise ValueError("give gpu_memory_gib or gpu_memory_utilization")
        return self


class OpenAIConfig(Section):
    """Any OpenAI-compatible `/v1/chat/completions` server (vLLM serve, llama.cpp, Ollama, APIs)."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """Server root up to and including `/v1`."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key; None: the server needs none.
    The key itself never goes into config, logs or outputs."""
    concurrency: int = Field(8, ge=1)
    """Requests in flight at once."""
    timeout_s: float = Field(60.0, gt=0)
    """Timeout of one request (connect, read and write alike)."""
    retries: int = Field(3, ge=0)
    """Further attempts after a failed request (connection error, timeout, HTTP 5xx/429/408,
    a body that is not a chat completion)."""
    backoff_s: float = Field(1.0, ge=0)
    """Wait before the first retry; doubles with every further retry."""
    request_deadline_s: float = Field(120.0, gt=0)
    """Longest time one request may take in all, reading included: `timeout_s` bounds each read,
    so a server that trickles its reply a byte at a time never meets it. A request past this
    counts as a failed attempt."""
    max_retry_after_s: float = Field(60.0, ge=0)
    """A rate-limited reply (HTTP 429/503) with `Retry-After` is retried after the time it
    asks, when that is at most this; a longer one ends the request's attempts at once (with a
    warning saying how long the server asked for)."""
    batch_deadline_s: float = Field(600.0, gt=0)
    """Longest time one batch (one RL step's stories) may take, retries included. Replies still
    missing then are failed calls; with `on_failure: stop` the batch stops with an error naming
    this key (at the defaults, a stalled server would otherwise hold a batch of 360 for ~3 h)."""
    server_label: str | None = None
    """Names the server in cache keys and metadata instead of `base_url`; None: the URL. An RL
    pack's teacher server (storyrl.rl.pack) gets a new free port in every job, so a resumed
    run would never find its cached replies under the URL."""


class HFConfig(Section):
    """transformers on this machine (CPU or GPU)."""

    device: str = "auto"
    """`auto`: cuda if available, else cpu; or any torch device string."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """`auto`: bf16 on a GPU, fp32 on CPU."""
    batch_size: int = Field(16, ge=1)
    """Stories per generate call."""
    share_prefix: bool = True
    """Run the tokens all prompts of a batch start with (the rubric in its chat template) once
    per batch and only each story and the answer line per row; the same logits as the full
    prompt within float rounding. False: every prompt in full through `generate`."""
    packed: bool = False
    """After the shared prefix, run the rows' own tokens as one sequence of their summed length
    (flex attention with a block mask: each row sees the prefix and itself), not padded to the
    longest row, and decode the reply from a static cache (compile-ready for CUDA graphs). The
    same logits as the full prompt within float rounding. Needs `share_prefix`. Off by
    default: on a CPU it is slower (flex attention runs unfused there)."""

    @model_validator(mode="after")
    def _packed_needs_prefix(self):
        if self.packed and not self.share_prefix:
            raise ValueError("packed: needs share_prefix: true (it packs the rows after it)")
        return self


class HeuristicConfig(Section):
    """The offline proxy teacher (storyrl/stories/teacher/heuristic.py)."""

    strictness: float = Field(1.0, gt=0, allow_inf_nan=False)
    """How hard it marks: the weight of the readability errors, and the divisor of the
    creativity estimate (1: the proxy as documented; above 1, a stricter judge, e.g. a second
    judge to measure agreement with).  Any value other than 1 changes the teacher's identity
    (and so its cache key)."""


class TeacherConfig(Section):
    """Who rates the student's stories, with which rubric and sampling settings."""

    backend: Literal["heuristic", "vllm", "openai", "hf"] = "heuristic"
    """`heuristic`: offline deterministic proxy (no LLM; NOT the paper's teacher);
    `vllm`: offline vLLM engine (paper); `openai`: an OpenAI-compatible server;
    `hf`: transformers locally."""
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Model name (vllm, hf: hub id or local folder; openai: the server's model name).
    Ignored by `heuristic`. Paper: meta-llama/Llama-3.1-8B-Instruct."""
    template: str = "config/prompts/teacher_rubric.txt"
    """Rubric template file: Jinja2 with the variables `story_prompt` (the opening) and
    `student_completion` (opening + continuation), rendered as `jinja2.Template(text).render`
    renders it (in Jinja2's sandbox; text, string literals and those two plain variables only:
    attributes, items, calls, filters and statements are refused), or the former format with
    `{prompt}` and `{story}` placeholders. The default is our own wording of the paper's rubric;
    config/paper.yaml names the authors' file (their `prompts/teacher_prompt.md`), which the
    user downloads. Its sha256 goes into every result's metadata. A relative path is resolved
    against the current working directory (the repo root when run by the workflow)."""
    template_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    """The sha256 (as `sha256sum` prints it) the template file must have; None: any file.
    config/paper.yaml pins the authors' file as of their commit 4bfd376 (it had other
    versions), so a copy of another version stops the plan and the run."""
    join: Literal["seam", "concat"] = "seam"
    """How the story the teacher grades (`student_completion`, `{story}`) is made of the opening
    and the continuation. `seam` (ours): joined as they are, with a space put between them when
    neither has whitespace there. `concat` (the authors' code: `q + r`): joined as they are, so a
    continuation decoded without a leading space is glued to the opening."""
    temperature: float = Field(0.2, ge=0)
    """Teacher sampling temperature (paper: 0.2; 0 means greedy)."""
    max_tokens: int = Field(6, ge=1)
    """Longest teacher reply in tokens (paper: 6)."""
    parse: Literal["strict", "paper"] = "strict"
    """How a reply is read. `strict` (ours): only a reply in the asked-for form (exactly three
    integers 0..3, labels and commas around them allowed) is parsed; `3.5 2 1` or `Score: 9/9`
    is unparsed and counts as a failure. `paper` (the authors' code): every integer in the
    reply, clamped to 0..3, the first three. Either way each row records `well_formed` and each
    step counts `teacher_malformed`."""
    on_failure: Literal["stop", "default"] = "stop"
    """What a failed call or an unparseable reply does. `stop` (ours): a batch with more than
    `max_failure_share` of them raises TeacherFailure (RL stops and keeps its state: training on
    default rewards would be silent garbage). `default` (the paper's code): each scores 0.5,
    training goes on, and the counts go to the log and the step table."""
    on_call_error: Literal["raise", "default"] = "raise"
    """What an error of the call to the teacher does (the engine raising for the whole batch,
    not a reply that failed alone). `raise` (ours): it stops the run, which keeps its state.
    `default` (the authors' teacher.py): every story of that call gets no reply (a failed call:
    0.5, 0 reply words, counted in `teacher_failed_calls`), then `on_failure` decides."""
    max_failure_share: float = Field(0.10, ge=0, le=1)
    """With `on_failure: stop`, the highest share of failed or unparseable replies in one batch
    that still returns default scores (0.5) for them."""
    vllm: VLLMConfig = VLLMConfig()
    openai: OpenAIConfig = OpenAIConfig()
    hf: HFConfig = HFConfig()
    heuristic: HeuristicConfig = HeuristicConfig()


class RewardConfig(Section):
    """Reward = (teacher_score + c * min(words(continuation) / max_new_tokens, 1)) / (1 + c)."""

    length_coef: float = Field(0.4, ge=0)
    """c, the weight of the length bonus (paper: 0.4; 0 turns the bonus off)."""
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Weights of readability, coherence and creativity in the teacher score (paper: 1, 1, 1;
    a 0 drops a criterion). teacher_score = weighted sum / (3 * sum of weights)."""

    @model_validator(mode="after")
    def _weights(self):
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return self
