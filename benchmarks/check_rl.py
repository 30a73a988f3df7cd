"""The GPU check's RL and evaluation phases: PPO steps of the project's loop
(`storyrl.rl.train.train`) at the paper's batch with a given teacher scorer, two runs sharing
the GPU and one teacher model, a 1,000-story evaluation, and zero-shot scoring."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from common import setup_paths

setup_paths()

PARTS = ("sample", "score", "update")


def sampling(sz: dict) -> dict:
    """The student's sampling section: the check's length and `--sampling-opts` (fields this
    checkout lacks are left out; sz["sampling_ignored"] names them)."""
    from check_pretrain import parse_opts

    from storyrl.config.rl import SamplingConfig

    chosen, ignored = parse_opts(sz.get("sampling_opts"), {"sampling": SamplingConfig})
    sz["sampling_ignored"] = ignored
    return {"max_new_tokens": sz["max_new_tokens"], **chosen["sampling"]}


def rl_config(sz: dict, precision: str, steps: int | None = None):
    from storyrl.config import RLConfig

    return RLConfig(
        batch_size=sz["ppo_batch"],
        max_steps=steps or sz["ppo_steps"],
        budget=10**9,
        checkpoint_every=10**9,
        sampling=sampling(sz),
        ppo={"precision": precision},
    )


def step_split(out: Path) -> dict:
    """Medians of the step table's timings over the steps after the first (CUDA warm-up)."""
    import numpy as np
    import pyarrow.parquet as pq

    steps = pq.read_table(out / "steps.parquet").to_pandas()
    later = steps.iloc[1:] if len(steps) > 1 else steps
    parts = {k: float(np.median(later[f"time_{k}_s"])) for k in PARTS}
    return {
        "steps": len(steps),
        "sample_s": round(parts["sample"], 3),
        "teacher_s": round(parts["score"], 3),
        "update_s": round(parts["update"], 3),
        "loop_s_per_step": round(sum(parts.values()), 3),
        "first_step_s": round(float(steps[[f"time_{k}_s" for k in PARTS]].iloc[0].sum()), 3),
        "response_tokens_mean": round(float(later["response_tokens_mean"].mean()), 1),
        "parsed_share": float(later["parsed_share"].mean()),
    }


def ppo_phase(work: Path, sz: dict, ckpt: str, scorer, precision: str, name: str) -> dict:
    from storyrl.rl.train import train

    out = work / f"rl-{name}"
    t0 = time.perf_counter()
    train(ckpt, out, rl_config(sz, precision), scorer, run_id=f"gpu-check-{name}")
    wall = time.perf_counter() - t0
    be = scorer.teacher.backend
    import torch

    from storyrl.rl.ppo import autocast_dtype

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return {
        "precision": precision,
        "sampling": sampling(sz),
        "sampling_opts_ignored": sz["sampling_ignored"],
        "update_arithmetic": "bf16" if autocast_dtype(precision, dev) is not None else "fp32",
        "batch": sz["ppo_batch"],
        "teacher_share_prefix": bool(be.cfg.hf.share_prefix),
        "teacher_batch": be.cfg.hf.batch_size,
        **step_split(out),
        "run_wall_s": round(wall, 1),
        "note": "medians over steps after the first; run_wall_s adds loading, state saves, "
        "tables and the final save",
    }


class LockedScorer:
    """One teacher model for several runs: their calls take turns, one batch at a time (as one
    server without batching across runs would answer them)."""

    def __init__(self, scorer, lock: threading.Lock):
        self.scorer, self.lock = scorer, lock

    def __call__(self, prompts, continuations):
        with self.lock:
            return self.scorer(prompts, continuations)

    def __getattr__(self, name):
        return getattr(self.scorer, name)


def pack_phase(work: Path, sz: dict, ckpt: str, scorer, precision: str, alone: dict) -> dict:
    """Two RL runs side by side in this process, each on its own CUDA stream and thread, asking
    the same teacher model: one run's sampling and update overlap the other's teacher call.
    Compared with one run alone (`alone`, the same steps): the wall time a pair of runs takes
    over twice one run's."""
    import torch

    from storyrl.rl.train import train

    lock, errors, walls = threading.Lock(), [], {}

    def run(i: int):
        try:
            ctx = (
                torch.cuda.stream(torch.cuda.Stream()) if torch.cuda.is_available() else _nullctx()
            )
            with ctx:
                t0 = time.perf_counter()
                train(
                    ckpt,
                    work / f"rl-pack-{i}",
                    rl_config(sz, precision),
                    LockedScorer(scorer, lock),
                    run_id=f"gpu-check-pack-{i}",
                )
                walls[i] = time.perf_counter() - t0
        except Exception as err:  # raised again below, in the phase
            errors.append(err)

    # Loading a model builds it on the meta device through process-wide switches: two threads
    # loading at once break each other, so loads take turns (two processes would not care).
    from transformers import AutoModelForCausalLM

    load, load_lock = AutoModelForCausalLM.from_pretrained, threading.Lock()

    def one_at_a_time(*a, **kw):
        with load_lock:
            return load(*a, **kw)

    AutoModelForCausalLM.from_pretrained = one_at_a_time
    try:
        t0 = time.perf_counter()
        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        AutoModelForCausalLM.from_pretrained = load
    if errors:
        raise errors[0]
    splits = [step_split(work / f"rl-pack-{i}") for i in range(2)]
    both = max(walls.values())
    return {
        "runs": 2,
        "steps_each": sz["ppo_steps"],
        "wall_s": round(wall, 1),
        "run_wall_s": [round(walls[i], 1) for i in range(2)],
        "alone_run_wall_s": alone.get("run_wall_s"),
        "pair_over_two_alone": round(both / (2 * alone["run_wall_s"]), 3)
        if alone.get("run_wall_s")
        else None,
        "split_per_run": splits,
        "note": "threads with a CUDA stream each in one process, teacher calls in turn; "
        "pair_over_two_alone < 1 is the overlap (1: none). A pack job runs processes and a "
        "batching server, so this is the overlap's order, not its value",
    }


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def story_eval_phase(work: Path, sz: dict, ckpt: str, scorer) -> dict:
    from storyrl.config import RLConfig, StoryEvalConfig
    from storyrl.evaluate.stories import evaluate_stories

    cfg = StoryEvalConfig(n_stories=sz["stories"], batch_size=sz["story_batch"], seed=42)
    rl = RLConfig(sampling=sampling(sz))
    t0 = time.perf_counter()
    summary = evaluate_stories(ckpt, work / "story_eval.parquet", cfg, rl, scorer)
    s = time.perf_counter() - t0
    return {
        "stories": summary["n"],
        "batch": sz["story_batch"],
        "teacher_share_prefix": bool(scorer.teacher.backend.cfg.hf.share_prefix),
        "seconds": round(s, 1),
        "stories_per_s": round(summary["n"] / s, 1),
    }


def zero_shot_phase(work: Path, sz: dict, ckpt: str) -> dict:
    import pandas as pd

    from storyrl.config import ZeroShotConfig
    from storyrl.data.demo_eval import generate
    from storyrl.evaluate.zero_shot import run_zero_shot

    data = work / "eval_data"
    generate(data, seed=0, n_full=sz["zs_full"], n_fast=sz["zs_fast"])
    cfg = ZeroShotConfig(variant="full", batch_size=64)
    t0 = time.perf_counter()
    rows = run_zero_shot(ckpt, data, output_dir=work / "zs", cfg=cfg)
    s = time.perf_counter() - t0
    df = pd.DataFrame(rows)
    items = int(df.loc[df["subtask"] == "", "n_items"].sum()) if len(df) else None
    return {
        "tasks": sorted(df["task"].unique().tolist()) if len(df) else [],
        "rows": len(rows),
        "items": items,
        "seconds": round(s, 2),
        "items_per_s": round(items / s, 1) if items else None,
        "note": "generated BabyLM-format data (no real BLiMP here); includes model load",
    }
