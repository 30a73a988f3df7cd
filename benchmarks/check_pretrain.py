"""The GPU check's pretraining phase: GPT-2 small from scratch through the project's `pretrain()`
(the transformers Trainer) on a BabyLM-format demo corpus run through the project's subset,
tokenizer and tokens stages. Tokens/s and MFU, once with `--pretrain-base-opts` (today's path:
no compilation, no fused kernels) and once with `--pretrain-opts` (by default none: the
config's defaults) of benchmarks/gpu_check.py (TrainingConfig fields, `model.NAME` for
ModelConfig ones).

MFU counts 6 x parameters + 12 x layers x width x context FLOPs per token (the PaLM/nanoGPT
estimate) against the dense bf16 peak (`--peak-tflops`; H100/H200 SXM: 989)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from common import setup_paths

setup_paths()


def build_corpus(work: Path, sz: dict) -> dict:
    """Demo BabyLM-format corpus -> subset -> tokenizer (padded to the paper's vocab) -> tokens."""
    from transformers import AutoTokenizer

    from storyrl.config import CorpusConfig, TokenizerConfig
    from storyrl.data.corpus import build_subset
    from storyrl.data.demo_corpus import generate
    from storyrl.data.tokenizer import train_tokenizer
    from storyrl.data.tokens import encode_corpus

    raw = work / "raw"
    generate(raw, sz["corpus_words"], seed=0)
    cfg = CorpusConfig(format="babylm", path=str(raw / "train_demo"))
    build_subset(cfg, cfg.path, work / "subset.parquet", work / "stats.json")
    train_tokenizer(TokenizerConfig(vocab_size=sz["vocab"]), work / "subset.parquet", work / "tok")
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


def parse_opts(opts: list[str] | None, sections: dict) -> tuple[dict, list[str]]:
    """`name=value` pairs -> {section: {field: value}} for the pydantic classes in `sections`
    (the first is the default; `<section>.name=value` picks another). Values are YAML scalars
    (true, 3, adamw_torch_fused). A field this checkout lacks is left out and named in the
    second list, so one command line serves the trees before and after a field lands."""
    import yaml

    out, ignored = {k: {} for k in sections}, []
    first = next(iter(sections))
    for item in opts or []:
        if "=" not in item:
            raise ValueError(f"'{item}' is not name=value")
        name, value = item.split("=", 1)
        section, _, field = name.rpartition(".")
        section = section or first
        if section not in sections or field not in sections[section].model_fields:
            ignored.append(item)
            continue
        out[section][field] = yaml.safe_load(value)
    return out, ignored


def flops_per_token(n_params: int, n_layer: int, width: int, context: int) -> float:
    return 6 * n_params + 12 * n_layer * width * context


def _stop_after(seconds: float):
    """A Trainer callback that ends training after `seconds` (the phase's own cap; the log
    keeps the steps done)."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if time.perf_counter() - self.t0 > seconds:
                control.should_training_stop = True
            return control

    return StopAfter()


def pretrain_phase(
    work: Path, sz: dict, peak_tflops: float, name: str, opts=None, cap_s=None, params=None
):
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from transformers import AutoModelForCausalLM

    from storyrl.config import ModelConfig, TrainingConfig
    from storyrl.pretrain.train import pretrain as _pretrain

    meta = json.loads((work / "tokens.json").read_text())
    block = sz["model"]["n_positions"]
    n_blocks = meta["n_tokens"] // block
    epochs = sz["pretrain_steps"] * sz["batch"] / n_blocks
    tokens_per_step = sz["batch"] * block
    words = lambda step: int(step * tokens_per_step / meta["tokens_per_word"])  # noqa: E731
    chosen, ignored = parse_opts(opts, {"training": TrainingConfig, "model": ModelConfig})
    training_opts, model_opts = chosen["training"], chosen["model"]
    training = TrainingConfig(
        batch_size=sz["batch"],
        micro_batch_size=sz["micro"],
        epochs=epochs,
        log_every=max(1, sz["pretrain_steps"] // 15),
        save_every=10**6,
        **training_opts,
    )
    model = ModelConfig(**{**sz["model"], **model_opts})
    run_dir = work / f"pre-{name}"
    callbacks = [_stop_after(cap_s)] if cap_s else []
    t0 = time.perf_counter()
    stopped_early = False
    try:
        out = _pretrain(
            work / "tokens.bin",
            work / "tokens.json",
            work / "tok",
            run_dir,
            f"gpu-check-{name}",
            model,
            training,
            # An early milestone too: a run cut off by its cap still leaves a checkpoint. The
            # last one 10% before the end: the run's blocks are counted after each row group's
            # remainder is dropped, so it ends a little before `pretrain_steps` full batches.
            sorted(
                {
                    words(min(5, sz["pretrain_steps"] // 2) or 1),
                    int(0.9 * words(sz["pretrain_steps"])),
                }
            ),
            seed=42,
            callbacks=callbacks,
        )
    except RuntimeError as err:  # the cap ended the run before its last milestone
        if "without milestones" not in str(err):
            raise
        stopped_early, out = True, run_dir / "milestones"
    train_s = time.perf_counter() - t0
    ckpts = sorted(Path(out).glob("ckpt-*"))
    logt = pq.read_table(run_dir / "log.parquet").to_pandas()
    tps = logt["tokens_per_s"].dropna().to_numpy()
    # The first logged interval holds the warm-up (CUDA kernels; compilation where switched on).
    steady = float(np.median(tps[1:] if len(tps) > 2 else tps)) if len(tps) else float("nan")
    ckpt = ckpts[-1] if ckpts else None
    n_params = params  # without a checkpoint that loads: the other run's count
    if ckpt is not None:
        try:
            n_params = sum(
                p.numel() for p in AutoModelForCausalLM.from_pretrained(ckpt).parameters()
            )
        except Exception:
            pass
    fpt = (
        flops_per_token(n_params, sz["model"]["n_layer"], sz["model"]["n_embd"], block)
        if n_params
        else None
    )
    cuda = torch.cuda.is_available()
    return {
        "opts": list(opts or []),
        "opts_ignored": ignored,
        "params": n_params,
        "steps": int(logt["step"].max()) if len(logt) else 0,
        "stopped_by_cap": stopped_early,
        "tokens_per_step": tokens_per_step,
        "micro_batch": training.micro_batch_size,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported()),
        "tokens_per_s_median": round(steady) if steady == steady else None,
        "tokens_per_s_first_interval": round(float(tps[0])) if len(tps) else None,
        "train_wall_s": round(train_s, 1),
        "s_per_step": round(tokens_per_step / steady, 4) if steady == steady else None,
        "mfu": round(steady * fpt / (peak_tflops * 1e12), 4) if cuda and fpt else None,
        "loss_first": float(logt["loss"].iloc[0]) if len(logt) else None,
        "loss_last": float(logt["loss"].iloc[-1]) if len(logt) else None,
        "checkpoint": str(ckpt) if ckpt else None,
    }
