"""The paper's code paths on one GPU in one call under 8 minutes; one JSON and one figure.

On this machine, then on the GPU machine (the check runs our pinned transformers and pydantic,
carried as wheels: `.whl/`, 19.5 MB, is git-ignored and travels with `carry: [".whl"]`); the
phases fit in 480 s, the outer timeout leaves the JSON and figure written if it fires:

    bash benchmarks/gpu_wheels.sh
    pip install -q --no-index --no-deps --find-links .whl --target /tmp/site \
      -r .whl/requirements.txt && PYTHONPATH=/tmp/site:$PWD timeout 570 \
      python benchmarks/gpu_check.py --out $OUT/gpu_check.json --budget-s 480

    python benchmarks/gpu_check.py --smoke --out /tmp/check.json   # CPU, tiny shapes (tests)

Phases, in this order, each capped in time, with its wall seconds and peak GPU memory; a phase
that fails records its error and the rest still run; a phase whose cap no longer fits in
`--budget-s` is skipped and says so; the JSON is rewritten after every phase (a killed check
keeps what it measured) and the figure (`<out>.png`) after the RL phases:
  corpus        demo BabyLM corpus -> subset -> tokenizer (16,000) -> tokens (check_pretrain.py)
  pretrain      GPT-2 small (12x12x768, 512 positions) from scratch with `pretrain()` at batch
                256 x 512 tokens with `--pretrain-base-opts` (default: today's path, no
                compilation or fused kernels): tokens/s and MFU
  pretrain_fast the same with `--pretrain-opts` (default: the config's defaults), side by side
  teacher       a random-init model of Llama-3.1-8B's shape in bf16 on the same GPU, and a
                rubric cut to Llama 3's 353 tokens (check_teacher.py says how)
  teacher_ab    360 prompts of Llama 3's lengths (stories of 85-145 tokens) through the hf
                teacher with the shared prefix and with every prompt in full: seconds, ratio
  teacher_packed the same prompts with the shared prefix, padded and packed (teacher.hf.packed)
  ppo_after     PPO steps of `storyrl.rl.train.train` at batch 360 with the shared-prefix
                teacher: seconds per step split into sampling / teacher / update, peak memory
  ppo_before    the same with today's full-prompt teacher
  story_eval    `evaluate_stories` of 1,000 stories with the shared-prefix teacher
  zero_shot     `run_zero_shot` on generated BabyLM-format data: items per second
  pack2         two RL runs sharing the GPU and the one teacher model (check_rl.py)
`benchmarks/cost_model.py` reads the JSON (copied to benchmarks/measured/gpu_check_<gpu>_<n>.json).
"""

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, Report, environment, setup_paths  # noqa: E402

setup_paths()
log = logging.getLogger("gpu_check")

# The pretraining speed switches (compile, fused AdamW, fused GELU) off: the baseline they are
# measured against.
TODAY = ["compile=false", "fused_adamw=false", "fused_gelu=false"]
GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, n_positions=512, dropout=0.1)
GPT2_TINY = dict(n_layer=2, n_head=2, n_embd=32, n_positions=256, dropout=0.1)
# Seconds: (cap of the phase, what must be left of the budget to start it) on the H200.
CAPS = {
    "corpus": (90, 20),
    "pretrain": (100, 40),
    "pretrain_fast": (110, 60),
    "teacher": (60, 10),
    "teacher_ab": (60, 20),
    "teacher_packed": (90, 30),
    "ppo_after": (100, 30),
    "ppo_before": (90, 40),
    "story_eval": (80, 25),
    "zero_shot": (45, 15),
    "pack2": (90, 45),
}


def sizes(smoke: bool) -> dict:
    """Every length the check uses: the paper's shapes on a GPU, tiny ones for the CPU test."""
    from check_teacher import LLAMA_8B, LLAMA_TINY

    if smoke:
        return dict(
            corpus_words=30_000,
            vocab=400,
            model=GPT2_TINY,
            batch=8,
            micro=4,
            pretrain_steps=6,
            ppo_batch=8,
            ppo_steps=2,
            max_new_tokens=16,
            stories=16,
            story_batch=8,
            teacher_shape=LLAMA_TINY,
            teacher_batch=8,
            rubric_tokens=120,
            story_tokens=(50, 70),  # the tiny tokenizer spends 41 on the opening
            zs_full=20,
            zs_fast=10,
        )
    return dict(
        corpus_words=1_500_000,
        vocab=16_000,
        model=GPT2_SMALL,
        batch=256,
        micro=64,
        pretrain_steps=60,
        ppo_batch=360,
        ppo_steps=4,
        max_new_tokens=90,
        stories=1000,
        story_batch=500,
        teacher_shape=LLAMA_8B,
        teacher_batch=360,
        rubric_tokens=353,
        story_tokens=(85, 145),
        zs_full=200,
        zs_fast=50,
    )


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "gpu_check.json"))
    p.add_argument("--work", help="scratch folder (default: a new temporary one)")
    p.add_argument("--budget-s", type=float, default=480, help="the whole check's seconds")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU")
    p.add_argument("--smoke", action="store_true", help="tiny shapes: checks the logic on CPU")
    p.add_argument("--pretrain-steps", type=int, help="optimizer steps of each pretraining run")
    p.add_argument(
        "--pretrain-base-opts",
        nargs="*",
        default=TODAY,
        help="NAME=VALUE TrainingConfig fields (model.NAME for ModelConfig ones) of the "
        f"first pretraining run (default: today's path, {' '.join(TODAY)}); a field this "
        "checkout lacks is left out and named in the JSON",
    )
    p.add_argument(
        "--pretrain-opts",
        nargs="*",
        default=[],
        help="the same for the second run, `pretrain_fast` (default: none, the config's own "
        "defaults)",
    )
    p.add_argument(
        "--sampling-opts",
        nargs="*",
        default=[],
        help="NAME=VALUE rl.sampling fields of every RL phase (e.g. compile=false)",
    )
    p.add_argument("--ppo-steps", type=int, help="RL steps of each PPO phase (the first warms up)")
    p.add_argument(
        "--ppo-precision",
        default="auto",
        choices=["fp32", "bf16", "auto"],
        help="the PPO update's arithmetic (rl.ppo.precision; auto: bf16 on a GPU)",
    )
    p.add_argument("--teacher-batch", type=int, help="stories per teacher batch (default 360)")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=[k for k in CAPS if k not in ("corpus", "pretrain", "teacher")],
        help="phases to leave out",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    sz = sizes(args.smoke)
    sz["sampling_opts"] = args.sampling_opts
    for key, value in (
        ("pretrain_steps", args.pretrain_steps),
        ("ppo_steps", args.ppo_steps),
        ("teacher_batch", args.teacher_batch),
    ):
        if value:
            sz[key] = value
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        print(
            "gpu_check: no CUDA device visible (use --smoke for the CPU logic check)",
            file=sys.stderr,
        )
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    rep = Report(
        Path(args.out),
        {"smoke": args.smoke, "sizes": dict(sz), "args": vars(args), "environment": environment()},
        budget_s=None if args.smoke else args.budget_s,
    )
    run_phases(rep, args, sz, work, device)
    failed = [k for k, v in rep.data.items() if isinstance(v, dict) and v.get("ok") is False]
    print(
        json.dumps(
            {k: v for k, v in rep.data.items() if k not in ("sizes", "args")}, indent=1, default=str
        )[:6000]
    )
    return 1 if failed else 0


def run_phases(rep: Report, args, sz: dict, work: Path, device: str) -> None:
    from check_figure import figure
    from check_pretrain import build_corpus, pretrain_phase
    from check_rl import pack_phase, ppo_phase, story_eval_phase, zero_shot_phase
    from check_teacher import build_teacher, make_scorer, synthetic_stories, teacher_ab

    def phase(name, fn, *a, **kw):
        cap, need = CAPS[name] if not args.smoke else (None, 0)
        return rep.phase(name, fn, *a, cap_s=cap, need_s=need, **kw)

    if not phase("corpus", build_corpus, work, sz).get("ok"):
        return
    # The pretraining run's own cap stops the Trainer a little before the phase's cap.
    own = lambda name: None if args.smoke else CAPS[name][0] - 25  # noqa: E731
    pre = phase(
        "pretrain",
        pretrain_phase,
        work,
        sz,
        args.peak_tflops,
        "base",
        args.pretrain_base_opts,
        own("pretrain"),
    )
    ckpt = pre.get("checkpoint")
    if "pretrain_fast" not in args.skip:
        fast = phase(
            "pretrain_fast",
            pretrain_phase,
            work,
            sz,
            args.peak_tflops,
            "fast",
            args.pretrain_opts,
            own("pretrain_fast"),
            pre.get("params"),
        )
        if fast.get("tokens_per_s_median") and pre.get("tokens_per_s_median"):
            fast["speedup_vs_pretrain"] = round(
                fast["tokens_per_s_median"] / pre["tokens_per_s_median"], 2
            )
            rep.write()
    if ckpt is None:
        return
    held = {}

    def teacher_phase():
        info = {}
        held["tok"], held["lm"], held["template"], held["scorers"], held["meta"] = build_teacher(
            work, sz, device, info
        )
        return info

    phase("teacher", teacher_phase)
    if "scorers" not in held:
        return
    shared, full = held["scorers"]["shared"], held["scorers"]["full"]
    skip = set(args.skip)

    def stories():
        from storyrl.config import PAPER_PROMPT

        conts = synthetic_stories(
            held["tok"],
            work / "tokens.bin",
            held["meta"],
            PAPER_PROMPT,
            sz["ppo_batch"],
            *sz["story_tokens"],
        )
        return [PAPER_PROMPT] * len(conts), conts

    if "teacher_ab" not in skip:
        phase("teacher_ab", lambda: teacher_ab({"shared": shared, "full": full}, *stories()))
    if "teacher_packed" not in skip:
        # The packed scorer switches the shared model's attention to the packed path's, which
        # hands every mask but a block mask to the same SDPA: later phases see the same kernels.
        def packed_ab():
            packed = make_scorer(
                held["tok"],
                held["lm"],
                held["template"],
                sz["teacher_batch"],
                True,
                sz["max_new_tokens"],
                packed=True,
            )
            return teacher_ab({"shared": shared, "packed": packed}, *stories())

        phase("teacher_packed", packed_ab)
    prec = args.ppo_precision
    if "ppo_after" not in skip:
        phase("ppo_after", ppo_phase, work, sz, ckpt, shared, prec, "after")
    if "ppo_before" not in skip:
        phase("ppo_before", ppo_phase, work, sz, ckpt, full, prec, "before")
    figure(rep.data, Path(args.out).with_suffix(".png"))
    if "story_eval" not in skip:
        phase("story_eval", story_eval_phase, work, sz, ckpt, shared)
    if "zero_shot" not in skip:
        phase("zero_shot", zero_shot_phase, work, sz, ckpt)
    if "pack2" not in skip:
        alone = rep.data.get("ppo_after") or {}
        if alone.get("ok"):
            phase("pack2", pack_phase, work, sz, ckpt, shared, prec, alone)
    rep.data["total_wall_s"] = rep.data.get("elapsed_s")
    rep.write()
    figure(rep.data, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    raise SystemExit(main())
