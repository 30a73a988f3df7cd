"""Several RL runs per GPU: the `rl_sharing` section, and how the run table is cut into packs.

A pack is K runs (`runs_per_gpu`) that one job trains side by side on one GPU
(storyrl.rl.pack). Runs whose teacher is the offline `vllm` engine share one teacher server
instead (`server.command`, by default `vllm serve`), asked through the `openai` backend, so one
run's sampling and update overlap with the others' teacher calls.
"""

import string

from pydantic import Field, field_validator

from storyrl.config.base import Section

VLLM_SERVE = (
    "vllm serve {model} --host 127.0.0.1 --port {port} --dtype {dtype}"
    " --max-model-len {max_model_len} --gpu-memory-utilization {gpu_memory_utilization}"
    " --max-num-seqs {max_seqs} --max-num-batched-tokens {max_batched_tokens}"
    " --enable-prefix-caching --generation-config vllm"
)
PLACEHOLDERS = {
    "model",
    "port",
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "max_seqs",
    "max_batched_tokens",
}
BATCHED_TOKENS = 8192
"""vLLM 0.30's `--max-num-batched-tokens` for a server on an H100/H200; a pack asks for at least
its `max_seqs`, since vLLM's scheduler refuses to start with fewer (its default on other GPUs,
2048, would stop a pack of more than 2,048 stories)."""


def max_batched_tokens(max_seqs: int) -> int:
    return max(BATCHED_TOKENS, max_seqs)


class ServerConfig(Section):
    """The teacher server a pack starts on a free localhost port when its runs' teacher is
    `vllm`."""

    command: str = VLLM_SERVE
    """Command line of the server (split like a shell would, run without one). Placeholders:
    `{model}` (teacher.model, the local weights folder), `{port}`, `{dtype}` and
    `{max_model_len}` (teacher.vllm), `{gpu_memory_utilization}` (below) and `{max_seqs}` (the
    stories of one step of every run of the pack: every request of a batch is in flight at
    once), `{max_batched_tokens}` (the larger of 8192 and `{max_seqs}`: vLLM refuses fewer
    batched tokens than sequences). A `vllm serve` command must say `--generation-config vllm`:
    without it vLLM takes its default sampling settings from the model's generation_config.json
    (Llama 3.1: top_p 0.9), and the teacher's requests pin only temperature, top_p, max_tokens
    and seed."""
    gpu_memory_utilization: float = Field(0.5, gt=0, le=1)
    """Share of the GPU's memory the server may take; the pack's trainers use the rest (the
    paper's one run gave vLLM 26 GiB; four runs' batches need about 4 x 7.6 GiB of KV cache
    beside 17.5 GiB of weights and activations)."""
    ready_timeout_s: float = Field(1200, gt=0)
    """How long the server may take until `/v1/models` answers (weights from a shared
    filesystem, engine build, CUDA graphs) before the pack stops with its log's last lines."""
    concurrency: int | None = Field(None, ge=1)
    """Teacher requests each run keeps in flight; None: its batch size (a whole step at once)."""

    @field_validator("command")
    @classmethod
    def _command(cls, command: str) -> str:
        names = {f for _, f, _, _ in string.Formatter().parse(command) if f is not None}
        unknown = names - PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join(sorted(unknown))}; known: "
                f"{', '.join(sorted(PLACEHOLDERS))}"
            )
        if "port" not in names:
            raise ValueError("the command must take the port the pack chose: put {port} in it")
        words = command.split()
        if words[:2] == ["vllm", "serve"] and "--generation-config vllm" not in " ".join(words):
            raise ValueError(
                "a `vllm serve` command needs `--generation-config vllm`, else the "
                "model's generation_config.json changes the teacher's sampling"
            )
        if (
            words[:2] == ["vllm", "serve"]
            and "--max-num-seqs" in words
            and "--max-num-batched-tokens" not in words
        ):
            raise ValueError(
                "a `vllm serve` command with `--max-num-seqs` needs `--max-num-batched-tokens "
                "{max_batched_tokens}`: vLLM refuses to start with fewer batched tokens than "
                "sequences (its default is 2048 on many GPUs)"
            )
        return command


class RLSharingConfig(Section):
    """Several RL runs per GPU (one job per pack of runs) with one teacher server per pack."""

    runs_per_gpu: int = Field(1, ge=1, le=4)
    """Runs trained side by side in one GPU job (1: one job per run, as the paper ran them).
    The run table is cut into packs of this many in its order (runs whose teachers differ in
    model or engine settings never share a pack); each pack is one job (`rl_pack_<n>`) that asks
    for one GPU and the `rl` rule's threads, runtime and memory. Results are those of separate
    runs with the same seeds: each run keeps its own seeds, teacher seed, cache and folder."""
    server: ServerConfig = ServerConfig()
    gpu_memory_gib: float | None = Field(None, gt=0)
    """Memory of the GPU a pack runs on (80 for an 80 GB card); None: not checked. When given,
    reading the config checks that each pack's runs (their PPO update, estimated from measured
    peaks scaled by `rl.ppo.micro_batch`: storyrl/config/pack_memory.py) and the teacher
    server's share fit it, and says by how much they do not."""


def server_key(teacher: dict):
    """What must be equal for two runs to share one teacher server (None: no server needed)."""
    if teacher.get("backend") != "vllm":
        return None
    return (teacher.get("model"), tuple(sorted((teacher.get("vllm") or {}).items())))


def rl_packs(plan: dict, runs_per_gpu: int) -> list[list[str]]:
    """Run ids of the plan (run id -> RLRun) in packs of at most `runs_per_gpu`, in the plan's
    order: runs are grouped by teacher server (`server_key`, first appearance first), then cut."""
    groups: dict = {}
    for run_id, run in plan.items():
        groups.setdefault(server_key(run.teacher), []).append(run_id)
    return [
        ids[i : i + runs_per_gpu]
        for ids in groups.values()
        for i in range(0, len(ids), runs_per_gpu)
    ]
