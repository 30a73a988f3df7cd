"""Checkpoint folders: loading, saving, the record each holds, and the device a model runs on.

A checkpoint is a Hugging Face causal-LM folder (config.json, weights, tokenizer) plus one record
of where it came from, as JSON:
    CHECKPOINT_INFO  written by pretraining into each milestone: run_id, milestone_words, step,
                     words_seen, tokens_seen, tokenizer_sha256
    RL_INFO          written by RL into every policy it saves (checkpoints/<words>/, final/):
                     run_id, step, rl_words, label_words (null for final/), pretrain_checkpoint,
                     pretrain_words, tokenizer_sha256
Pretraining, RL and evaluation all read and write these through this module, so the file names
and fields are stated once. `tokenizer_sha256` (`tokenizer_fingerprint`) is checked at every
load: a tokenizer from another corpus with the same vocabulary size loads and runs, and gives
plausible, meaningless scores. torch and transformers are imported where used: the workflow's
Snakefile imports modules that import this one.
"""

import json
import logging
from contextlib import contextmanager
from pathlib import Path

from storyrl.core.atomic import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_INFO = "storyrl_checkpoint.json"
"""Written into every pretraining milestone folder."""
RL_INFO = "storyrl_rl.json"
"""Written into every RL policy folder (checkpoints/<words>/ and final/)."""
TOKENIZER_KEY = "tokenizer_sha256"
"""The field of either record that holds the tokenizer's fingerprint."""
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer.model", "vocab.txt")
"""A folder with none of these has no tokenizer: transformers would then load one from
elsewhere (a hub cache) without a word."""


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
    """The folder's tokenizer, refused unless it is the one its model was trained with
    (`check_tokenizer`)."""
    from transformers import AutoTokenizer

    folder = Path(model_dir)
    if folder.is_dir() and not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise CheckpointError(
            f"{folder}: no tokenizer in the folder (none of {', '.join(TOKENIZER_FILES)}); copy "
            "in the tokenizer the model was trained with"
        )
    with _unreadable(model_dir, "tokenizer"):
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    check_tokenizer(folder, tok)
    return tok


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what a tokenizer maps text to: its model's type, vocabulary and merges, and its
    added tokens, as canonical JSON (the same tokenizer saved by another library version, or
    into other files, keeps its fingerprint)."""
    import hashlib

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        model = json.loads(backend.to_str())["model"]
        # Merges are "a b" strings in older tokenizer.json files, [a, b] pairs in newer ones.
        merges = [
            m.split(" ", 1) if isinstance(m, str) else list(m) for m in model.get("merges") or []
        ]
        core = {"type": model.get("type"), "vocab": model.get("vocab"), "merges": merges}
    else:  # a slow (Python) tokenizer
        core = {"type": type(tokenizer).__name__, "vocab": tokenizer.get_vocab(), "merges": []}
    core["added"] = tokenizer.get_added_vocab()
    text = json.dumps(core, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_UNCHECKED: set[str] = set()
"""Folders already warned about (a policy and its reference load the same folder)."""


def check_tokenizer(model_dir, tokenizer) -> None:
    """Refuse a tokenizer that is not the one the folder's record names, or that has more tokens
    than the model's embeddings. A folder whose record has no fingerprint (saved before records
    held one, or not by storyrl) is used with a warning: refusing it would strand every older
    result, and the size check still stops a tokenizer whose ids would index past the model."""
    folder = Path(model_dir)
    name, info = next(
        ((n, i) for n in (RL_INFO, CHECKPOINT_INFO) if (i := read_info(folder, n)) is not None),
        (None, {}),
    )
    recorded = info.get(TOKENIZER_KEY)
    if recorded is not None and (found := tokenizer_fingerprint(tokenizer)) != recorded:
        raise CheckpointError(
            f"{folder}: the tokenizer in the folder (sha256 {found[:12]}) is not the tokenizer "
            f"the model was trained with (sha256 {recorded[:12]} in {name}), and its scores "
            "would be meaningless; copy the run's own tokenizer files back into the folder"
        )
    try:
        config = json.loads((folder / "config.json").read_text())
        embeddings = config.get("vocab_size") if isinstance(config, dict) else None
    except (OSError, ValueError):  # missing or cut off: loading the model names the file
        embeddings = None
    if embeddings is not None and len(tokenizer) > embeddings:
        raise CheckpointError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens, the model's embeddings "
            f"{embeddings}: it is not the tokenizer the model was trained with; copy the run's "
            "own tokenizer files back into the folder"
        )
    if recorded is None and str(folder) not in _UNCHECKED:
        _UNCHECKED.add(str(folder))
        log.warning(
            "%s: no recorded tokenizer fingerprint (%s); its tokenizer is not checked against "
            "the one the model was trained with",
            folder,
            f"its {name} predates them" if name else "no storyrl record in the folder",
        )


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
    """An HF folder, atomically; `info` (if given) goes into it as RL_INFO, with the tokenizer's
    fingerprint."""
    with atomic_path(path, is_dir=True) as tmp:
        lm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if info is not None:
            write_info(tmp, RL_INFO, {**info, TOKENIZER_KEY: tokenizer_fingerprint(tokenizer)})


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
