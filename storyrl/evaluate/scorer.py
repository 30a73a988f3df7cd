"""One scorer for every zero-shot task: the summed log-probability of a scored span.

A candidate is a text and a `completion`, its scored suffix. As in the official pipeline
(`sentence_zero_shot/dataset.py`, causal backend) the text is tokenized as a whole with the
tokenizer's own special tokens; a token is scored when its character span ends after the
completion starts (offsets), and token 0 is never scored since nothing predicts it (so with a
tokenizer that adds no BOS the first word of a sentence does not count; nothing adds one here).

Batches are right-padded and sorted by length; with a causal model a real token never attends to
the padding after it, so padding changes nothing. The LM head runs only at scored positions.
On a GPU the forward pass runs under bf16 autocast unless `dtype="float32"`; `score(...,
precise=True)` always runs in fp32 (used to re-check close calls).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# Architectures whose logits are exactly `get_output_embeddings()(base_model(...)[0])`, so the head
# can run on the scored positions only; any other model gets full logits.
_PLAIN_HEAD = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gpt_neo", "gptj"}


@dataclass(frozen=True)
class Encoded:
    ids: tuple[int, ...]
    scored: tuple[bool, ...]
    """Per token: is it part of the scored span (token 0 never is)."""


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Scorer:
    """A causal LM and its tokenizer, loaded once; scores any number of candidates."""

    def __init__(self, model_dir: str | Path, device: str = "auto", dtype: str = "auto",
                 batch_size: int = 64, model=None, tokenizer=None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = resolve_device(device)
        if dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype: '{dtype}' is not one of auto, float32, bfloat16")
        # bf16 autocast on GPU only: on CPU it is slower and less exact.
        self.low_precision = dtype == "bfloat16" or (dtype == "auto" and self.device.type == "cuda")
        self.batch_size = batch_size
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model_dir))
        self.model = model or AutoModelForCausalLM.from_pretrained(str(model_dir))
        self.model.to(self.device).eval()
        self.plain_head = getattr(self.model.config, "model_type", "") in _PLAIN_HEAD
        self.max_len = getattr(self.model.config, "max_position_embeddings", None) or \
            getattr(self.model.config, "n_positions", None)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0

    # ------------------------------------------------------------------ tokenization
    def encode(self, text: str, completion: str) -> Encoded:
        out = self.tokenizer(text, return_offsets_mapping=True)
        ids, offsets = out["input_ids"], out["offset_mapping"]
        # The official rule: the completion starts at len(text) - len(completion), shifted by
        # where the first token starts; a token is scored when its span ends after that.
        start = len(text) - len(completion) + offsets[0][0]
        scored = tuple(i > 0 and end > start for i, (_, end) in enumerate(offsets))
        if self.max_len and len(ids) > self.max_len:
            raise ValueError(f"{len(ids)} tokens is more than the model's {self.max_len} "
                             f"positions: {text[:80]!r}...")
        return Encoded(tuple(ids), scored)

    def encode_all(self, pairs) -> list[Encoded]:
        return [self.encode(t, c) for t, c in pairs]

    # ------------------------------------------------------------------ scoring
    def score(self, seqs: list[Encoded], precise: bool = False,
              progress: bool = False) -> list[float]:
        """Summed log-prob of the scored tokens of each sequence (fp32 sums)."""
        # Identical candidates get one forward pass and so exactly equal scores (a tie).
        unique: dict[Encoded, int] = {}
        index = [unique.setdefault(s, len(unique)) for s in seqs]
        uniq = list(unique)
        order = sorted(range(len(uniq)), key=lambda i: -len(uniq[i].ids))
        sums = [0.0] * len(uniq)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if progress:
            from tqdm import tqdm
            batches = tqdm(batches, desc="scoring", unit="batch", leave=False)
        for batch in batches:
            for i, v in zip(batch, self._score_batch([uniq[i] for i in batch], precise)):
                sums[i] = v
        return [sums[i] for i in index]

    @torch.inference_mode()
    def _score_batch(self, seqs: list[Encoded], precise: bool) -> list[float]:
        width = max(len(s.ids) for s in seqs)
        if width < 2:  # one token each: nothing is predicted, nothing scored
            return [0.0] * len(seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.bool)
        for row, s in enumerate(seqs):
            ids[row, :len(s.ids)] = torch.tensor(s.ids)
            mask[row, :len(s.ids)] = torch.tensor(s.scored)
        ids, mask = ids.to(self.device), mask.to(self.device)
        # Position t predicts token t+1: inputs are ids[:, :-1], targets ids[:, 1:].
        target_mask = mask[:, 1:]
        rows = target_mask.nonzero(as_tuple=True)[0]
        targets = ids[:, 1:][target_mask]
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.low_precision and not precise)
        with autocast:
            if self.plain_head:
                hidden = self.model.base_model(input_ids=ids[:, :-1])[0]
                logits = self.model.get_output_embeddings()(hidden[target_mask])
            else:
                logits = self.model(input_ids=ids[:, :-1]).logits[target_mask]
        logp = F.log_softmax(logits.float(), dim=-1).gather(-1, targets[:, None])[:, 0]
        sums = torch.zeros(len(seqs), dtype=torch.float32, device=self.device)
        sums.index_add_(0, rows, logp)
        return sums.tolist()
