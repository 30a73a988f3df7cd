"""How much GPU memory a pack of RL runs needs, checked when the config is read.

The per-run estimate comes from the PPO update, the peak of a run (sampling 360 stories of 90
tokens holds far less), measured on an H200 for the paper's shape: GPT-2 small (12 x 12 x 768,
vocab 16,000), batch 360 in one minibatch, 20 prompt + 90 response tokens
(benchmarks/measured/ppo_precision_h200_small_b360.json, `peak_gib`: torch's peak allocation).
The peak splits into a part that does not depend on the stories in one pass (policy weights,
gradients and Adam's two moments in fp32, the fp32 reference: 20 bytes x 98M parameters) and
activations, which scale with the stories of one forward/backward pass (`ppo.micro_batch`):

    run GiB = CONTEXT + FIXED + (PEAK[precision] - FIXED) x stories_per_pass / 360

A pack needs runs_per_gpu x run GiB plus the teacher server's share
(rl_sharing.server.gpu_memory_utilization x rl_sharing.gpu_memory_gib). Models or story
lengths other than the measured shape scale differently: the check is a guide for the paper's.
"""

MEASURED_STORIES = 360
PEAK_GIB = {"fp32": 48.44, "bf16": 37.73}
"""PPO update peak at 360 stories per pass (the benchmark file's `peak_gib`, rounded)."""
FIXED_GIB = 20 * 98.0e6 / 2**30
"""Weights, gradients and Adam state of the policy plus the reference, fp32: 20 B/parameter."""
CONTEXT_GIB = 0.5
"""The CUDA context of each process (not in torch's peak allocation); an assumption."""


def stories_per_pass(rl) -> int:
    minibatch = rl.ppo.mini_batch_size or rl.batch_size
    return min(rl.ppo.micro_batch or minibatch, minibatch)


def run_gib(rl) -> float:
    """GPU memory of one RL run (an RLConfig), by the formula above; `auto` counts as bf16 (what
    it is on a GPU with native bf16, the GPUs a pack of paper runs fits on)."""
    peak = PEAK_GIB["fp32" if rl.ppo.precision == "fp32" else "bf16"]
    share = stories_per_pass(rl) / MEASURED_STORIES
    return CONTEXT_GIB + FIXED_GIB + (peak - FIXED_GIB) * share


def check_packs(packs: list[list[str]], plan: dict, sharing) -> None:
    """ValueError naming the numbers when a pack does not fit `sharing.gpu_memory_gib`."""
    total = sharing.gpu_memory_gib
    if total is None:
        return
    for pack in packs:
        served = any(plan[r].teacher.get("backend") == "vllm" for r in pack)
        server = sharing.server.gpu_memory_utilization * total if served else 0.0
        runs = {r: run_gib(plan[r].rl) for r in pack}
        need = sum(runs.values()) + server
        if need <= total:
            continue
        first = plan[pack[0]].rl
        parts = ", ".join(
            f"{r} {g:.1f} GiB ({stories_per_pass(plan[r].rl)} stories per pass)"
            for r, g in runs.items()
        )
        raise ValueError(
            f"rl_sharing: the pack {', '.join(pack)} needs about {need:.1f} GiB, more than "
            f"rl_sharing.gpu_memory_gib={total:g}: runs {parts}"
            + (
                f", teacher server {sharing.server.gpu_memory_utilization:g} x {total:g} = "
                f"{server:.1f} GiB"
                if served
                else ""
            )
            + ". Run GiB = "
            f"{CONTEXT_GIB:g} + {FIXED_GIB:.2f} + (peak - {FIXED_GIB:.2f}) x stories per pass / "
            f"{MEASURED_STORIES} with the measured peak {PEAK_GIB['bf16']:g} GiB (bf16) / "
            f"{PEAK_GIB['fp32']:g} GiB (fp32) at {MEASURED_STORIES}. Set rl.ppo.micro_batch "
            f"(now {first.ppo.micro_batch}), lower rl_sharing.runs_per_gpu or the server's "
            "gpu_memory_utilization (storyrl/config/pack_memory.py)"
        )
