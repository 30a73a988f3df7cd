"""Checkpoint folders: loading, saving, the record each holds, and the device a model runs on.

A checkpoint is a Hugging Face causal-LM folder (config.json, weights, tokenizer) plus one record
of where it came from, as JSON:
    CHECKPOINT_INFO  written by pretraining into each milestone: run_id, milestone_words, step,
                     words_seen, tokens_seen
    RL_INFO          written by RL into every policy it saves (checkpoints/<words>/, final/):
                     run_id, step, rl_words, label_words (null for final/), pretrain_checkpoint,
                     pretrain_words
Pretraining, RL and evaluation all read and write these through this module, so the file names
and fields are stated once. torch and transformers are imported where used: the workflow's
Snakefile imports modules that import this one.
"""

import json
from contextlib import contextmanager
from pathlib import Path

from storyrl.atomic import atomic_path

CHECKPOINT_INFO = "storyrl_checkpoint.json"
"""Written into every pretraining milestone folder."""
RL_INFO = "storyrl_rl.json"
"""Written into every RL policy folder (checkpoints/<words>/ and final/)."""


class CheckpointError(Exception):
    """A checkpoint that cannot be used: its files do not load, or its model scores NaN. The
    message starts with the folder."""


# --------------------------------------------------------------------------- device
def resolve_device(device: str = "auto", threads: int | None = None):
    """`auto`: CUDA when torch sees it, else CPU; any other value is a torch device string.
    `threads` (if set) fixes torch's CPU threads."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------- load and save
def load_tokenizer(model_dir):
    from transformers import AutoTokenizer

    with _unreadable(model_dir, "tokenizer"):
        return AutoTokenizer.from_pretrained(str(model_dir))


def load_model(model_dir, dtype=None):
    """The causal LM; `dtype` (a torch dtype) overrides the saved one."""
    from transformers import AutoModelForCausalLM

    kw = {} if dtype is None else {"dtype": dtype}
    with _unreadable(model_dir, "model"):
        return AutoModelForCausalLM.from_pretrained(str(model_dir), **kw)


@contextmanager
def _unreadable(model_dir, what: str):
    """A folder whose files do not load (a truncated model.safetensors, a cut-off config.json)
    raises CheckpointError naming it, not a library's traceback that names no file. A missing
    folder stays an OSError (the CLI names its path)."""
    from safetensors import SafetensorError

    try:
        yield
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(
            f"{model_dir}: cannot load the {what} ({type(err).__name__}: {first[:200]}); the "
            "checkpoint is damaged (a copy or save cut short?): rebuild or replace it"
        ) from err


def load_checkpoint(checkpoint):
    """(tokenizer, model) of a folder a policy samples from: the tokenizer must have an EOS
    token (a story ends there) and pads with it when it has no pad token."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").exists():
        raise FileNotFoundError(f"{checkpoint}: not a Hugging Face model folder (no config.json)")
    tok = load_tokenizer(checkpoint)
    if tok.eos_token_id is None:
        raise ValueError(f"{checkpoint}: the tokenizer has no eos_token")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, load_model(checkpoint)


def save_checkpoint(path, lm, tokenizer, info: dict | None = None) -> None:
    """An HF folder, atomically; `info` (if given) goes into it as RL_INFO."""
    with atomic_path(path, is_dir=True) as tmp:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if info is not None:
            write_info(tmp, RL_INFO, info)


def content_identity(checkpoint) -> dict:
    """What a checkpoint's model is: sha256 of its config and weight files (a path can be
    re-published with other weights; the same weights can move)."""
    import hashlib

    folder = Path(checkpoint)
    digest = hashlib.sha256()
    files = sorted(
        f
        for f in folder.iterdir()
        if f.name == "config.json" or f.suffix in (".safetensors", ".bin")
    )
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                digest.update(chunk)
    return {"sha256": digest.hexdigest(), "files": [f.name for f in files]}


# --------------------------------------------------------------------------- records
def write_info(folder, name: str, info: dict) -> None:
    """Write a record into a folder being built (inside an atomic_path block)."""
    (Path(folder) / name).write_text(json.dumps(info, indent=2) + "\n")


def read_info(folder, name: str) -> dict | None:
    """The record `name` of a folder, or None when it has none."""
    f = Path(str(folder)) / name
    return json.loads(f.read_text()) if f.exists() else None


def pretrain_words(checkpoint) -> int | None:
    """Pretraining words of a pretraining checkpoint, from its CHECKPOINT_INFO (the milestone it
    was saved for, else the words it had seen); None if the folder has none."""
    info = read_info(checkpoint, CHECKPOINT_INFO)
    if info is None:
        return None
    words = info.get("milestone_words", info.get("words_seen"))
    return int(words) if words is not None else None


def rl_words(model_dir) -> int | None:
    """RL words of an RL checkpoint (its RL_INFO), else None."""
    info = read_info(model_dir, RL_INFO)
    return int(info["rl_words"]) if info is not None else None


def checkpoint_ids(model_dir) -> dict:
    """What the folder says about itself: from RL_INFO (run_id, rl_words, pretrain_words) or
    from the pretraining CHECKPOINT_INFO (pretrain_words); empty if neither is there."""
    info = read_info(model_dir, RL_INFO)
    if info is not None:
        return {k: info.get(k) for k in ("run_id", "rl_words", "pretrain_words")}
    words = pretrain_words(model_dir)
    return {} if words is None else {"pretrain_words": words}
