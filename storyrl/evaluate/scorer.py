"""One scorer for every zero-shot task: the summed log-probability of a scored span.

A candidate is a text and a `completion`, its scored suffix. As in the official pipeline
(`sentence_zero_shot/dataset.py`, causal backend) the text is tokenized as a whole with the
tokenizer's own special tokens; a token is scored when its character span ends after the
completion starts (offsets), and token 0 is never scored since nothing predicts it (so with a
tokenizer that adds no BOS the first word of a sentence does not count; nothing adds one here).

By default candidates are packed as prefix trees (`storyrl.evaluate.packing`): every distinct
token prefix runs once, within and across items, with a tree attention mask and no padding
inside a row; the LM head runs once per node that predicts a scored token, and a target's
log-prob is its logit minus the node's logsumexp (fp32), not a full log-softmax. Models whose
attention takes no custom mask (`pack=False`, or not sdpa/eager) get the plain way: batches
sorted by length, right-padded with an attention mask (a real token never attends to the padding
after it, so padding changes nothing), the head at scored positions only, and an item's common
prefix run once through the KV cache. GPT-2's `gelu_new` (eight elementwise passes in Python)
becomes torch's fused kernel of the same formula unless `fused_gelu=False`.
On a GPU the forward pass runs under bf16 autocast unless `dtype="float32"`; `score(...,
precise=True)` always runs in fp32 (used to re-check close calls).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from storyrl.core.hf_compat import cache_kwarg, fuse_gelu, output_cache

log = logging.getLogger(__name__)

# Architectures whose logits are exactly `get_output_embeddings()(base_model(...)[0])`, so the head
# can run on the scored positions only; any other model gets full logits.
_PLAIN_HEAD = {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gpt_neo", "gptj"}


@dataclass(frozen=True)
class Encoded:
    ids: tuple[int, ...]
    scored: tuple[bool, ...]
    """Per token: is it part of the scored span (token 0 never is)."""


def uses_bf16(dtype: str, device_type: str) -> bool:
    """Whether a Scorer of this `dtype` on this kind of device scores under bf16 autocast:
    `bfloat16` always, `auto` on a GPU only (on a CPU bf16 is slower and less exact), `float32`
    never (the official pipeline, and the authors' evaluation, loaded the model in fp32)."""
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"dtype: '{dtype}' is not one of auto, float32, bfloat16")
    return dtype == "bfloat16" or (dtype == "auto" and device_type == "cuda")


class Scorer:
    """A causal LM and its tokenizer, loaded once; scores any number of candidates."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        share_prefix: bool | str = True,
        min_shared: int = 8,
        model=None,
        tokenizer=None,
        pack: bool = True,
        pack_len: int = 256,
        fused_gelu: bool = True,
    ):
        from storyrl.core.checkpoints import load_model, load_tokenizer, resolve_device

        self.model_dir = model_dir
        self.device = resolve_device(device)
        self.low_precision = uses_bf16(dtype, self.device.type)
        self.batch_size = batch_size
        if share_prefix not in (True, False, "item"):
            raise ValueError(f"share_prefix: {share_prefix!r} is not one of True, False, 'item'")
        self.share_prefix = share_prefix
        """Run a shared token prefix once: True across all candidates of a call, "item" only
        within an item (`score_groups`), False never."""
        self.min_shared = min_shared
        """Unpacked scoring only: share an item's common prefix when it is at least this many
        tokens (plus one): there a shared item costs two passes, which short prefixes do not
        repay."""
        self.pack_len = pack_len
        """Packed scoring: nodes per row (at least the longest candidate). Attention costs
        grow with it, prefixes shared across rows run once per row."""
        self.tokenizer = tokenizer or load_tokenizer(model_dir)
        # fp32 weights whatever the saved dtype, as the official run loads them; bf16 comes
        # from autocast only.
        self.model = model or load_model(model_dir, dtype=torch.float32)
        self.model.to(self.device).eval()
        if fused_gelu:
            fuse_gelu(self.model)
        self.plain_head = getattr(self.model.config, "model_type", "") in _PLAIN_HEAD
        self.max_len = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id or 0
        self.pack = pack
        """Pack candidates as prefix trees when the attention takes a custom mask."""

    # ------------------------------------------------------------------ tokenization
    def encode(self, text: str, completion: str) -> Encoded:
        return self.encode_all([(text, completion)])[0]

    def encode_all(self, pairs) -> list[Encoded]:
        """Tokenize (text, completion) pairs in one call; mark the scored tokens."""
        pairs = list(pairs)
        out = self.tokenizer([t for t, _ in pairs], return_offsets_mapping=True)
        encoded, truncated = [], 0
        for (text, completion), ids, offsets in zip(pairs, out["input_ids"], out["offset_mapping"]):
            # The official rule: the completion starts at len(text) - len(completion), shifted
            # by where the first token starts; a token is scored when its span ends after that.
            start = len(text) - len(completion) + offsets[0][0]
            scored = tuple(i > 0 and end > start for i, (_, end) in enumerate(offsets))
            if self.max_len and len(ids) > self.max_len:
                # Left truncation, as lm-evaluation-harness does: the earliest context goes,
                # the scored completion stays whole (the first kept token has no context).
                ids, scored = ids[-self.max_len :], (False,) + scored[-self.max_len + 1 :]
                if sum(scored) < sum(
                    1 for i, (_, end) in enumerate(offsets) if i > 0 and end > start
                ):
                    raise ValueError(
                        f"the completion alone is longer than the model's "
                        f"{self.max_len} positions: {text[:80]!r}..."
                    )
                truncated += 1
            encoded.append(Encoded(tuple(ids), scored))
        if truncated:
            log.warning(
                "%d of %d sequences are longer than the model's %d positions: their "
                "earliest tokens were dropped",
                truncated,
                len(pairs),
                self.max_len,
            )
        return encoded

    # ------------------------------------------------------------------ scoring
    def score(
        self, seqs: list[Encoded], precise: bool = False, progress: bool = False
    ) -> list[float]:
        """Summed log-prob of the scored tokens of each sequence (fp32 sums)."""
        if self._packs():
            keys = [0] * len(seqs) if self.share_prefix is True else range(len(seqs))
            return self._score_packed(seqs, keys, precise, progress)
        # Identical candidates get one forward pass and so exactly equal scores (a tie).
        unique: dict[Encoded, int] = {}
        index = [unique.setdefault(s, len(unique)) for s in seqs]
        uniq = list(unique)
        order = sorted(range(len(uniq)), key=lambda i: -len(uniq[i].ids))
        sums = [0.0] * len(uniq)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="scoring", unit="batch", leave=False)
        for batch in batches:
            for i, v in zip(batch, self._score_batch([uniq[i] for i in batch], precise)):
                sums[i] = v
        return [sums[i] for i in index]

    def score_groups(
        self, groups: list[list[Encoded]], precise: bool = False, progress: bool = False
    ) -> list[list[float]]:
        """Like `score`, per item; candidates of an item that share a token prefix run it once.

        The shared prefix (all but its last token) is run once with the KV cache kept; each
        candidate then runs from the prefix's last token on with that cache, the padded cache
        positions masked out and positions continuing from the prefix. This is the same
        computation as a full forward pass, reordered.
        """
        if self._packs():
            flat = [e for g in groups for e in g]
            keys = [
                gi if self.share_prefix == "item" else 0 for gi, g in enumerate(groups) for _ in g
            ]
            vals = iter(self._score_packed(flat, keys, precise, progress))
            return [[next(vals) for _ in g] for g in groups]
        out = [[0.0] * len(g) for g in groups]
        jobs, plain = [], []
        for gi, g in enumerate(groups):
            uniq = list(dict.fromkeys(g))
            n = _shared_len(uniq) if self.share_prefix and len(uniq) > 1 else 0
            if n - 1 >= self.min_shared:
                jobs.append((gi, uniq, n))
            else:
                plain += [(gi, ci, e) for ci, e in enumerate(g)]
        for (gi, ci, _), v in zip(plain, self.score([e for *_, e in plain], precise)):
            out[gi][ci] = v
        jobs.sort(key=lambda j: -j[2])
        # A chunk holds at most `batch_size` candidates, so each phase is one forward pass.
        chunks, size = [], self.batch_size
        for job in jobs:
            if size + len(job[1]) > self.batch_size:
                chunks.append([])
                size = 0
            chunks[-1].append(job)
            size += len(job[1])
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc="scoring shared prefixes", unit="batch", leave=False)
        for chunk in chunks:
            for (gi, uniq, _), vals in zip(chunk, self._shared_chunk(chunk, precise)):
                by_seq = dict(zip(uniq, vals))
                out[gi] = [by_seq[e] for e in groups[gi]]
        return out

    @torch.inference_mode()
    def _shared_chunk(self, jobs, precise: bool) -> list[list[float]]:
        from transformers import DynamicCache

        # Phase 1: each item's shared prefix; its scored tokens count once for every candidate.
        prefixes = [Encoded(u[0].ids[:n], u[0].scored[:n]) for _, u, n in jobs]
        ids, mask, att = self._pad(prefixes)
        head, cache = self._forward(
            ids[:, :-1],
            ids[:, 1:],
            mask[:, 1:],
            precise,
            use_cache=True,
            attention_mask=att[:, :-1],
        )
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        past = ids.shape[1] - 1
        # Phase 2: every candidate from the prefix's last token on.
        cands = [(j, k) for j, (_, u, _) in enumerate(jobs) for k in range(len(u))]
        cands.sort(key=lambda c: -(len(jobs[c[0]][1][c[1]].ids) - jobs[c[0]][2]))
        vals = [[head[j]] * len(u) for j, (_, u, _) in enumerate(jobs)]
        for i in range(0, len(cands), self.batch_size):
            batch = cands[i : i + self.batch_size]
            rows = torch.tensor([j for j, _ in batch], device=self.device)
            starts = [jobs[j][2] - 1 for j, _ in batch]
            tails = [
                Encoded(jobs[j][1][k].ids[s:], jobs[j][1][k].scored[s:])
                for (j, k), s in zip(batch, starts)
            ]
            t_ids, t_mask, real = self._pad(tails)
            width = t_ids.shape[1]
            start = torch.tensor(starts, device=self.device)[:, None]
            seen = torch.arange(past, device=self.device)[None, :] < start
            kv = DynamicCache(
                ddp_cache_data=[
                    (k.index_select(0, rows), v.index_select(0, rows)) for k, v in layers
                ]
            )
            positions = start + torch.arange(width - 1, device=self.device)[None, :]
            if self.max_len:  # padding after a late-starting short tail may run past the end
                positions = positions.clamp(max=self.max_len - 1)
            sums, _ = self._forward(
                t_ids[:, :-1],
                t_ids[:, 1:],
                t_mask[:, 1:],
                precise,
                **{cache_kwarg(self._trunk()): kv},
                attention_mask=torch.cat([seen.long(), real[:, :-1]], 1),
                position_ids=positions,
            )
            for (j, k), v in zip(batch, sums):
                vals[j][k] += v
        return vals

    def _trunk(self):
        """The module `_forward` hands a KV cache to."""
        return self.model.base_model if self.plain_head else self.model

    def _attention(self) -> str | None:
        return getattr(self.model.config, "_attn_implementation", None)

    def _packs(self) -> bool:
        # A tree needs a custom 4D mask: sdpa and eager take one as given, flash attention not.
        return self.pack and self._attention() in ("sdpa", "eager")

    def _score_packed(
        self, seqs: list[Encoded], keys, precise: bool, progress: bool
    ) -> list[float]:
        """Sums per sequence; sequences share prefix nodes only with equal `keys` (ints), and
        never when `share_prefix` is False."""
        from storyrl.evaluate.packing import plan

        # Identical candidates (with equal keys) are one unit and so get exactly equal scores.
        unique: dict[tuple, int] = {}
        index = [unique.setdefault((k, s), len(unique)) for k, s in zip(keys, seqs)]
        units = [
            (k if self.share_prefix else i, s.ids, s.scored) for i, (k, s) in enumerate(unique)
        ]
        if not units:
            return []
        longest = max(len(s.ids) for _, s in unique) - 1
        # A pass holds no more tokens than a padded batch of the longest sequences would.
        row_len = max(self.pack_len, longest, 1)
        passes = plan(units, row_len, max(1, self.batch_size * max(longest, 1) // row_len))
        if progress:
            from tqdm import tqdm

            passes = tqdm(passes, desc="scoring", unit="batch", leave=False)
        sums = torch.zeros(len(units), dtype=torch.float64)
        for p in passes:
            logp = self._tree_forward(p, precise)
            sums.index_add_(0, p.member_unit, logp[p.member_edge].double())
        sums = sums.tolist()  # summed in fp64: the order of the terms hardly matters
        return [sums[i] for i in index]

    @torch.inference_mode()
    def _tree_forward(self, p, precise: bool) -> torch.Tensor:
        """log p(target | node) of each edge of a pass (fp32, on the CPU)."""
        dev = self.device
        low = self.low_precision and not precise
        # An additive mask in the dtype of the scores: sdpa would otherwise convert a bool mask
        # in every layer, and eager adds it as it is.
        dtype = torch.bfloat16 if low else torch.float32
        mask = torch.zeros(p.visible.shape, dtype=dtype, device=dev).masked_fill_(
            ~p.visible.to(dev), torch.finfo(dtype).min
        )[:, None]
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=low)
        rows, cols = p.head_row.to(dev), p.head_col.to(dev)
        with autocast:
            kw = dict(
                input_ids=p.ids.to(dev),
                attention_mask=mask,
                position_ids=p.positions.to(dev),
                use_cache=False,
            )
            if self.plain_head:
                hidden = self.model.base_model(**kw)[0][rows, cols]
            else:
                logits_all = self.model(**kw).logits[rows, cols]
        out = []
        edge_head, edge_target = p.edge_head.to(dev), p.edge_target.to(dev)
        # The head in chunks of nodes: full-vocabulary logits of every node at once can be large.
        for a in range(0, len(rows), 2048):
            sel = (edge_head >= a) & (edge_head < a + 2048)
            if self.plain_head:
                with autocast:
                    logits = self.model.get_output_embeddings()(hidden[a : a + 2048])
            else:
                logits = logits_all[a : a + 2048]
            logits = logits.float()
            h, t = edge_head[sel] - a, edge_target[sel]
            out.append((sel.nonzero()[:, 0], logits[h, t] - logits.logsumexp(-1)[h]))
        logp = torch.empty(len(edge_head), device=dev)
        for where, v in out:
            logp[where] = v
        return logp.cpu()

    def _pad(self, seqs: list[Encoded]):
        """Right-padded ids, scored mask and attention mask (1 on real tokens)."""
        width = max(len(s.ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.bool)
        for row, s in enumerate(seqs):
            ids[row, : len(s.ids)] = torch.tensor(s.ids)
            mask[row, : len(s.ids)] = torch.tensor(s.scored)
        att = torch.arange(width)[None, :] < torch.tensor([len(s.ids) for s in seqs])[:, None]
        return ids.to(self.device), mask.to(self.device), att.long().to(self.device)

    @torch.inference_mode()
    def _score_batch(self, seqs: list[Encoded], precise: bool) -> list[float]:
        if max(len(s.ids) for s in seqs) < 2:  # one token each: nothing is predicted
            return [0.0] * len(seqs)
        ids, mask, att = self._pad(seqs)
        # Position t predicts token t+1: inputs are ids[:, :-1], targets ids[:, 1:].
        return self._forward(
            ids[:, :-1], ids[:, 1:], mask[:, 1:], precise, attention_mask=att[:, :-1]
        )[0]

    def _forward(self, inputs, targets, target_mask, precise, use_cache=False, **kw):
        """Per row: the summed log-prob of `targets` where `target_mask`; and the KV cache."""
        rows = target_mask.nonzero(as_tuple=True)[0]
        autocast = torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.low_precision and not precise
        )
        with autocast:
            if self.plain_head:
                out = self.model.base_model(input_ids=inputs, use_cache=use_cache, **kw)
                logits = self.model.get_output_embeddings()(out[0][target_mask])
            else:
                out = self.model(input_ids=inputs, use_cache=use_cache, **kw)
                logits = out.logits[target_mask]
        # The target's logit minus the logsumexp: no full-vocabulary log-softmax tensor.
        logits = logits.float()
        logp = logits.gather(-1, targets[target_mask][:, None]) - logits.logsumexp(-1, True)
        sums = torch.zeros(len(inputs), dtype=torch.float32, device=self.device)
        sums.index_add_(0, rows, logp[:, 0])
        return sums.tolist(), (output_cache(out) if use_cache else None)


def _shared_len(seqs: list[Encoded]) -> int:
    """Tokens (and scored flags) all candidates share, leaving each at least one of its own."""
    n = min(len(s.ids) for s in seqs) - 1
    first = seqs[0]
    for i in range(n):
        if any(s.ids[i] != first.ids[i] or s.scored[i] != first.scored[i] for s in seqs[1:]):
            return i
    return n
