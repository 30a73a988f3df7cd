"""The paper's code paths on one GPU, at reduced length, in a few minutes; one JSON of numbers.

    python benchmarks/gpu_check.py --out benchmarks/out/gpu_check.json [--teacher-model DIR]
    python benchmarks/gpu_check.py --smoke --out /tmp/check.json      # CPU, tiny shapes (tests)

Phases, each timed with its peak GPU memory; a phase that fails records its error and the rest
still run, and the JSON is rewritten after every phase (a killed check keeps what it measured):
  pretrain    GPT-2 small (12x12x768, 512 positions, vocab 16,000) from scratch with the
              project's `pretrain()` (transformers Trainer, bf16, batch 256 x 512 tokens) on a
              BabyLM-format demo corpus run through the project's subset/tokenizer/tokens
              stages: tokens/s and MFU.
  teacher     the teacher on the same GPU: `--teacher-model DIR` (a local Llama-3.1-8B-Instruct
              or any chat model) with the vLLM backend where vLLM imports, else the hf backend;
              without weights, a randomly initialised model of Llama-3.1-8B's shape (same
              compute per token, replies are noise and score the default), and the JSON says so.
  ppo_<prec>  a few PPO steps of the project's RL loop (`storyrl.rl.train.train`) at the paper's
              batch of 360 with the teacher above, once per `--ppo-precision` of the update
              (fp32: the paper's arithmetic; bf16: autocast trunk): seconds per step split into
              sampling / teacher / update, and the run's wall time (state saves, tables), peak memory.
  story_eval  `evaluate_stories` of 1,000 stories with the same teacher: wall seconds.
  zero_shot   `run_zero_shot` on the generated BabyLM-format evaluation data: items per second.

One file on purpose (a little over 400 lines): it is the one command a GPU machine runs, and
each phase calls the project's own entry points.

MFU counts 6 x parameters + 12 x layers x width x context FLOPs per token (the PaLM/nanoGPT
estimate) against the dense bf16 peak given by --peak-tflops (H100/H200 SXM: 989).
"""

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

log = logging.getLogger("gpu_check")

# Llama-3.1-8B-Instruct's shape (config.json of the release).
LLAMA_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
LLAMA_TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    rope_theta=500000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, n_positions=512, dropout=0.1)
GPT2_TINY = dict(n_layer=2, n_head=2, n_embd=32, n_positions=256, dropout=0.1)
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def sizes(smoke: bool) -> dict:
    """Every length the check uses: the paper's shapes on a GPU, tiny ones for the CPU test."""
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
            teacher_batch=4,
            zs_full=20,
            zs_fast=10,
        )
    return dict(
        corpus_words=3_000_000,
        vocab=16_000,
        model=GPT2_SMALL,
        batch=256,
        micro=64,
        pretrain_steps=200,
        ppo_batch=360,
        ppo_steps=4,
        max_new_tokens=90,
        stories=1000,
        story_batch=500,
        teacher_shape=LLAMA_8B,
        teacher_batch=180,
        zs_full=200,
        zs_fast=50,
    )


class Report:
    """The JSON, rewritten after every phase."""

    def __init__(self, path: Path, data: dict):
        self.path, self.data = path, data
        self.write()

    def write(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")

    def phase(self, name: str, fn, *args):
        """Run fn(*args) -> dict of numbers; record it (or its error), seconds and peak memory."""
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            out = fn(*args) or {}
            ok = True
        except Exception as err:  # record and go on: the other phases' numbers still count
            out, ok = (
                {
                    "error": f"{type(err).__name__}: {err}",
                    "traceback": traceback.format_exc(limit=8),
                },
                False,
            )
            log.exception("phase %s failed", name)
        if cuda:
            torch.cuda.synchronize()
            out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        out["wall_s"] = round(time.perf_counter() - t0, 2)
        out["ok"] = ok
        self.data[name] = out
        self.write()
        log.info("%s: %s", name, {k: v for k, v in out.items() if k != "traceback"})
        return out


def environment() -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    import transformers

    env["transformers"] = transformers.__version__
    try:
        import vllm

        env["vllm"] = vllm.__version__
    except Exception as err:  # CUDA-only optional extra
        env["vllm"] = f"not importable ({type(err).__name__})"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            device=p.name,
            device_count=torch.cuda.device_count(),
            gpu_mem_gb=round(p.total_memory / 1e9, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env


# --------------------------------------------------------------------------- pretraining
def build_corpus(work: Path, sz: dict) -> dict:
    """Demo BabyLM-format corpus -> subset -> tokenizer (padded to the paper's vocab) -> tokens."""
    from storyrl.config import CorpusConfig, TokenizerConfig
    from storyrl.corpus import build_subset
    from storyrl.demo_corpus import generate
    from storyrl.tokenizer import train_tokenizer
    from storyrl.tokens import encode_corpus

    raw = work / "raw"
    generate(raw, sz["corpus_words"], seed=0)
    cfg = CorpusConfig(format="babylm", path=str(raw / "train_demo"))
    build_subset(cfg, cfg.path, work / "subset.parquet", work / "stats.json")
    train_tokenizer(TokenizerConfig(vocab_size=sz["vocab"]), work / "subset.parquet", work / "tok")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(work / "tok")
    # The demo corpus has fewer merges than 16,000: pad so the model has the paper's size.
    missing = sz["vocab"] - len(tok)
    if missing > 0:
        tok.add_tokens([f"<unused{i}>" for i in range(missing)])
        tok.save_pretrained(work / "tok")
    meta = encode_corpus(
        work / "subset.parquet", work / "tok", work / "tokens.bin", work / "tokens.json"
    )
    return {
        "corpus_words": meta["n_words"],
        "corpus_tokens": meta["n_tokens"],
        "vocab": len(tok),
        "tokens_per_word": round(meta["tokens_per_word"], 4),
    }


def flops_per_token(n_params: int, n_layer: int, width: int, context: int) -> float:
    return 6 * n_params + 12 * n_layer * width * context


def pretrain_phase(work: Path, sz: dict, peak_tflops: float) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from storyrl.config import ModelConfig, TrainingConfig
    from storyrl.pretrain import pretrain

    corpus = build_corpus(work, sz)
    meta = json.loads((work / "tokens.json").read_text())
    block = sz["model"]["n_positions"]
    n_blocks = meta["n_tokens"] // block
    epochs = sz["pretrain_steps"] * sz["batch"] / n_blocks
    tokens_per_step = sz["batch"] * block
    words = lambda step: int(step * tokens_per_step / meta["tokens_per_word"])  # noqa: E731
    milestones = sorted({words(sz["pretrain_steps"] // 2), words(sz["pretrain_steps"]) - 1})
    training = TrainingConfig(
        batch_size=sz["batch"],
        micro_batch_size=sz["micro"],
        epochs=epochs,
        log_every=max(1, sz["pretrain_steps"] // 15),
        save_every=10**6,
    )
    model = ModelConfig(**sz["model"])
    t0 = time.perf_counter()
    out = pretrain(
        work / "tokens.bin",
        work / "tokens.json",
        work / "tok",
        work / "pre",
        "gpu-check",
        model,
        training,
        milestones,
        seed=42,
    )
    train_s = time.perf_counter() - t0
    ckpt = sorted(Path(out).glob("ckpt-*"))[-1]
    logt = pq.read_table(work / "pre" / "log.parquet").to_pandas()
    tps = logt["tokens_per_s"].dropna().to_numpy()
    steady = float(np.median(tps[1:] if len(tps) > 2 else tps)) if len(tps) else float("nan")
    from transformers import AutoModelForCausalLM

    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(ckpt).parameters())
    fpt = flops_per_token(n_params, sz["model"]["n_layer"], sz["model"]["n_embd"], block)
    steps = int(logt["step"].max()) if len(logt) else 0
    return {
        **corpus,
        "params": n_params,
        "steps": steps,
        "tokens_per_step": tokens_per_step,
        "micro_batch": sz["micro"],
        "bf16": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
        "tokens_per_s_median": round(steady),
        "train_wall_s": round(train_s, 1),
        "s_per_step": round(tokens_per_step / steady, 4) if steady == steady else None,
        "mfu": round(steady * fpt / (peak_tflops * 1e12), 4) if torch.cuda.is_available() else None,
        "loss_first": float(logt["loss"].iloc[0]) if len(logt) else None,
        "loss_last": float(logt["loss"].iloc[-1]) if len(logt) else None,
        "checkpoint": str(ckpt),
    }


# --------------------------------------------------------------------------- teacher
def random_teacher(work: Path, sz: dict, device: str):
    """A chat model of Llama-3.1-8B's shape with random weights (no download): the teacher's
    compute and memory, not its judgement. Its tokenizer is the student's, with a chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(work / "tok")
    tok.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        **sz["teacher_shape"],
    )
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            lm = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(previous)
    return tok, lm.eval()


def make_scorer(args, work: Path, sz: dict, device: str):
    """The teacher + reward scorer the RL loop and the story evaluation use."""
    from storyrl.rl.scoring import TeacherScorer
    from storyrl.teacher import RewardConfig, Teacher, TeacherConfig
    from storyrl.teacher.hf_backend import HFBackend
    from storyrl.teacher.rubric import load_rubric

    template = str(ROOT / "config" / "prompts" / "teacher_rubric.txt")
    # The paper's failure policy: a reply without scores counts 0.5 and the run goes on (random
    # or small teachers reply mostly noise).
    base = dict(template=template, temperature=0.2, max_tokens=6, on_failure="default")
    reward_cfg = RewardConfig()
    info = {}
    if args.teacher_model:
        backend_name = "vllm" if _vllm_ok() and device.startswith("cuda") else "hf"
        tcfg = TeacherConfig(
            backend=backend_name,
            model=args.teacher_model,
            **base,
            vllm={"gpu_memory_utilization": args.vllm_memory},
            hf={"batch_size": sz["teacher_batch"]},
        )
        from storyrl.teacher import make_teacher

        t0 = time.perf_counter()
        teacher = make_teacher(tcfg, seed=42)
        info.update(
            teacher=args.teacher_model,
            backend=backend_name,
            weights="real",
            load_s=round(time.perf_counter() - t0, 1),
        )
    else:
        t0 = time.perf_counter()
        tok, lm = random_teacher(work, sz, device)
        tcfg = TeacherConfig(
            backend="hf",
            model="random-llama-3.1-8b-shape",
            **base,
            hf={"batch_size": sz["teacher_batch"]},
        )

        backend = HFBackend(tcfg, load_rubric(template), 42, model=lm, tokenizer=tok)
        teacher = Teacher(backend, backend.rubric, tcfg, None, reward_cfg.weights)
        n = sum(p.numel() for p in lm.parameters())
        info.update(
            teacher="random init, Llama-3.1-8B shape (no weights on this machine)",
            backend="hf (vLLM absent)" if not _vllm_ok() else "hf",
            weights="random",
            params=n,
            build_s=round(time.perf_counter() - t0, 1),
        )
    prompt_tokens = None
    if hasattr(teacher.backend, "chat_prompt"):
        from storyrl.config import PAPER_PROMPT

        text = teacher.backend.chat_prompt(PAPER_PROMPT, "the fox ran into the woods . " * 8)
        prompt_tokens = len(teacher.backend.tok(text, add_special_tokens=False)["input_ids"])
    info["rubric_prompt_tokens_80_word_story"] = prompt_tokens

    return TeacherScorer(teacher, reward_cfg, sz["max_new_tokens"]), info


def _vllm_ok() -> bool:
    try:
        import vllm  # noqa: F401

        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- RL and evaluation
def ppo_phase(work: Path, sz: dict, ckpt: str, scorer, precision: str) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from storyrl.config import RLConfig
    from storyrl.rl.train import train

    cfg = RLConfig(
        batch_size=sz["ppo_batch"],
        max_steps=sz["ppo_steps"],
        budget=10**9,
        checkpoint_every=10**9,
        sampling={"max_new_tokens": sz["max_new_tokens"]},
        ppo={"precision": precision},
    )
    out = work / f"rl-{precision}"
    t0 = time.perf_counter()
    train(ckpt, out, cfg, scorer, run_id="gpu-check")
    wall = time.perf_counter() - t0
    steps = pq.read_table(out / "steps.parquet").to_pandas()
    later = steps.iloc[1:] if len(steps) > 1 else steps  # step 1 includes CUDA warm-up
    parts = {k: float(np.median(later[f"time_{k}_s"])) for k in ("sample", "score", "update")}
    return {
        "precision": precision,
        "batch": sz["ppo_batch"],
        "steps": len(steps),
        "sample_s": round(parts["sample"], 3),
        "teacher_s": round(parts["score"], 3),
        "update_s": round(parts["update"], 3),
        "loop_s_per_step": round(sum(parts.values()), 3),
        "first_step_s": round(
            float(steps[["time_sample_s", "time_score_s", "time_update_s"]].iloc[0].sum()), 3
        ),
        "run_wall_s": round(wall, 1),
        "response_tokens_mean": round(float(later["response_tokens_mean"].mean()), 1),
        "parsed_share": float(later["parsed_share"].mean()),
        "note": "medians over steps after the first; run_wall_s adds loading, state saves, "
        "tables and the final save",
    }


def story_eval_phase(work: Path, sz: dict, ckpt: str, scorer) -> dict:
    from storyrl.config import RLConfig, StoryEvalConfig
    from storyrl.evaluate.stories import evaluate_stories

    cfg = StoryEvalConfig(n_stories=sz["stories"], batch_size=sz["story_batch"], seed=42)
    rl = RLConfig(sampling={"max_new_tokens": sz["max_new_tokens"]})
    t0 = time.perf_counter()
    summary = evaluate_stories(ckpt, work / "story_eval.parquet", cfg, rl, scorer)
    s = time.perf_counter() - t0
    return {
        "stories": summary["n"],
        "batch": sz["story_batch"],
        "seconds": round(s, 1),
        "stories_per_s": round(summary["n"] / s, 1),
    }


def zero_shot_phase(work: Path, sz: dict, ckpt: str) -> dict:
    import pandas as pd

    from storyrl.config import ZeroShotConfig
    from storyrl.demo_eval import generate
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "gpu_check.json"))
    p.add_argument("--work", help="scratch folder (default: a new temporary one)")
    p.add_argument("--teacher-model", help="local folder of the teacher (Llama-3.1-8B-Instruct)")
    p.add_argument("--vllm-memory", type=float, default=0.25, help="vLLM's GPU share (paper 0.25)")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak for MFU")
    p.add_argument("--smoke", action="store_true", help="tiny shapes: checks the logic on CPU")
    p.add_argument("--pretrain-steps", type=int, help="optimizer steps of the pretraining phase")
    p.add_argument("--ppo-steps", type=int, help="RL steps of each PPO phase")
    p.add_argument(
        "--ppo-precision",
        nargs="+",
        default=["fp32", "bf16"],
        choices=["fp32", "bf16", "auto"],
        help="one PPO phase per update precision",
    )
    p.add_argument("--skip", nargs="*", default=[], choices=["ppo", "story_eval", "zero_shot"])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    sz = sizes(args.smoke)
    if args.pretrain_steps:
        sz["pretrain_steps"] = args.pretrain_steps
    if args.ppo_steps:
        sz["ppo_steps"] = args.ppo_steps
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        print(
            "gpu_check: no CUDA device visible (use --smoke for the CPU logic check)",
            file=sys.stderr,
        )
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    rep = Report(
        Path(args.out),
        {"smoke": args.smoke, "sizes": {k: v for k, v in sz.items()}, "environment": environment()},
    )
    t_all = time.perf_counter()
    pre = rep.phase("pretrain", pretrain_phase, work, sz, args.peak_tflops)
    ckpt = pre.get("checkpoint")
    if ckpt is None:
        return 1
    holder = {}

    def teacher_phase():
        holder["scorer"], info = make_scorer(args, work, sz, device)
        return info

    rep.phase("teacher", teacher_phase)
    if "scorer" in holder:
        if "ppo" not in args.skip:
            for precision in args.ppo_precision:
                rep.phase(
                    f"ppo_{precision}", ppo_phase, work, sz, ckpt, holder["scorer"], precision
                )
        if "story_eval" not in args.skip:
            rep.phase("story_eval", story_eval_phase, work, sz, ckpt, holder["scorer"])
        holder["scorer"].close()
        holder.clear()
        if device == "cuda":
            torch.cuda.empty_cache()
    if "zero_shot" not in args.skip:
        rep.phase("zero_shot", zero_shot_phase, work, sz, ckpt)
    rep.data["total_wall_s"] = round(time.perf_counter() - t_all, 1)
    rep.write()
    failed = [k for k, v in rep.data.items() if isinstance(v, dict) and v.get("ok") is False]
    print(
        json.dumps({k: v for k, v in rep.data.items() if k != "sizes"}, indent=1, default=str)[
            :6000
        ]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
