"""Teacher run with transformers on this machine, prompted through the model's chat template.

With `teacher.hf.share_prefix` (the default) the tokens every prompt of a batch starts with (the
rubric, wrapped by the chat template) go through the model once; each row then reads only its
own story and the answer line, attending to that one prefix cache. A row is laid out as
prefix, padding, story: the attention mask is zero on the padding and positions count real
tokens only, so the model sees what it sees for the full prompt
(tests/stories/test_teacher_hf_prefix.py checks the logits and the greedy replies against the full
prompt). With `teacher.hf.packed` the rows after the prefix run packed end to end instead, without
the padding (hf_packed.py)."""

import logging

from storyrl.config import TeacherConfig
from storyrl.stories.rubric import Rubric

log = logging.getLogger(__name__)


def common_prefix_len(rows: list[list[int]]) -> int:
    """Tokens all rows start with, leaving at least one token of each row after it (the row's
    last token must run to give its next-token logits)."""
    if not rows:
        return 0
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for r in rows[1:]:
        i = 0
        while i < n and r[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


class HFBackend:
    name = "hf"
    server = None  # runs in this process

    def __init__(self, cfg: TeacherConfig, rubric: Rubric, seed: int, model=None, tokenizer=None):
        """Loads `cfg.model`; or takes a `model` and `tokenizer` already in memory (the GPU
        check builds a teacher of Llama's shape that has no folder)."""
        from transformers import AutoTokenizer

        self.cfg, self.rubric, self.seed = cfg, rubric, seed
        self.model = cfg.model
        self.sampling = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": seed}
        h = cfg.hf
        self.tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(cfg.model)
        if self.tok.chat_template is None:
            raise ValueError(f"teacher.model: {cfg.model} has no chat template")
        self.tok.padding_side = "left"  # generation continues right after each prompt
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        if model is not None:
            self.lm, self.device = model.eval(), str(next(model.parameters()).device)
        else:
            self.lm, self.device = self._load(cfg)
        if h.packed:
            from storyrl.stories.teacher.hf_packed import use_packed_attention

            use_packed_attention(self.lm)

    @staticmethod
    def _load(cfg: TeacherConfig):
        import torch
        from transformers import AutoModelForCausalLM

        from storyrl.core.checkpoints import resolve_device

        h = cfg.hf
        device = str(resolve_device(h.device))
        dtype = {
            "auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[h.dtype]
        return AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).to(
            device
        ).eval(), device

    def chat_prompt(self, prompt: str, continuation: str) -> str:
        """The exact text the model reads: one user message through the chat template, then the
        assistant turn's opening."""
        return self.tok.apply_chat_template(
            [{"role": "user", "content": self.rubric.render(prompt, continuation)}],
            tokenize=False,
            add_generation_prompt=True,
        )

    def encode(self, prompts: list[str], continuations: list[str]) -> list[list[int]]:
        """Token ids of each chat prompt (the template already holds BOS and the other special
        tokens: the tokenizer adds none)."""
        texts = [self.chat_prompt(p, c) for p, c in zip(prompts, continuations)]
        return self.tok(texts, add_special_tokens=False)["input_ids"]

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        import torch

        rows = self.encode(prompts, continuations)
        out: list[str | None] = []
        bs = self.cfg.hf.batch_size
        # Same batches, same replies; in a fork of the RNG, because the student samples from the
        # global stream, which a reseed here would reset at every RL step.
        devices = (
            [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        )
        run = self.generate_shared if self.cfg.hf.share_prefix else self.generate_full
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            for i in range(0, len(rows), bs):
                new, _ = run(rows[i : i + bs])
                out.extend(self.tok.batch_decode(new, skip_special_tokens=True))
        return out

    def generate_full(self, rows: list[list[int]]):
        """Every prompt in full through `generate` (left padding); the new tokens, and no
        logits."""
        import torch

        enc = self.tok.pad({"input_ids": rows}, return_tensors="pt").to(self.device)
        gen = {"max_new_tokens": self.cfg.max_tokens, "pad_token_id": self.tok.pad_token_id}
        if self.cfg.temperature > 0:
            gen.update(do_sample=True, temperature=self.cfg.temperature, top_k=0, top_p=1.0)
        else:
            gen.update(do_sample=False)
        with torch.no_grad():
            ids = self.lm.generate(**enc, **gen)
        return ids[:, enc["input_ids"].shape[1] :], None

    def _eos_ids(self) -> list[int]:
        eos = self.lm.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        return eos or [self.tok.eos_token_id]

    def generate_shared(self, rows: list[list[int]], keep_logits: bool = False):
        """The batch's common token prefix once, then each row's rest, then the reply tokens
        one at a time. Sampling is `generate`'s (fp32 logits / temperature, softmax,
        multinomial; greedy at temperature 0); a finished row gets padding. Returns the new
        tokens (rows x steps) and, with `keep_logits`, the fp32 logits of every step."""
        import torch

        from storyrl.core.hf_compat import cache_kwarg, output_cache

        arg = cache_kwarg(self.lm)
        dev = self.device
        n = common_prefix_len(rows)
        b = len(rows)
        pad = self.tok.pad_token_id
        with torch.inference_mode():
            cache = None
            if n > 0:
                head = torch.tensor([rows[0][:n]], device=dev)
                out = self.lm(input_ids=head, use_cache=True, logits_to_keep=1)
                cache = output_cache(out)
            if self.cfg.hf.packed:
                from storyrl.stories.teacher.hf_packed import packed_prefill

                scores, cache, mask, pos = packed_prefill(
                    self.lm, rows, n, cache, self.cfg.max_tokens
                )
            else:
                scores, cache, mask, pos = self._padded_prefill(rows, n, cache)
            eos = torch.tensor(self._eos_ids(), device=dev)
            done = torch.zeros(b, dtype=torch.bool, device=dev)
            new, logits = [], []
            for step in range(self.cfg.max_tokens):
                if keep_logits:
                    logits.append(scores)
                if self.cfg.temperature > 0:
                    probs = torch.softmax(scores / self.cfg.temperature, dim=-1)
                    nxt = torch.multinomial(probs, num_samples=1).squeeze(1)
                else:
                    nxt = scores.argmax(-1)
                nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
                new.append(nxt)
                done = done | torch.isin(nxt, eos)
                if bool(done.all()) or step == self.cfg.max_tokens - 1:
                    break
                if not self.cfg.hf.packed:  # the static cache's mask already spans the reply
                    mask = torch.cat([mask, torch.ones_like(nxt[:, None])], dim=-1)
                out = self.lm(
                    input_ids=nxt[:, None],
                    attention_mask=mask,
                    position_ids=pos,
                    use_cache=True,
                    logits_to_keep=1,
                    **{arg: cache},
                )
                cache = output_cache(out)
                scores = out.logits[:, -1, :].float()
                pos = pos + 1
        return torch.stack(new, dim=1), (torch.stack(logits, dim=1) if keep_logits else None)

    def _padded_prefill(self, rows: list[list[int]], n: int, cache):
        """Each row's tokens after the prefix as one padded rectangle (prefix, padding, row).
        Returns the last tokens' logits, the cache, the 2D mask and the next positions."""
        import torch

        from storyrl.core.hf_compat import cache_kwarg, output_cache

        dev, b = self.device, len(rows)
        if cache is not None:
            # One copy of the prefix's keys and values, viewed by every row: the first update
            # concatenates each row's own tokens onto it.
            for layer in cache.layers:
                layer.keys = layer.keys.expand(b, -1, -1, -1)
                layer.values = layer.values.expand(b, -1, -1, -1)
        tails = [r[n:] for r in rows]
        width = max(len(t) for t in tails)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in tails], device=dev)
        mask = torch.tensor(
            [[1] * n + [0] * (width - len(t)) + [1] * len(t) for t in tails], device=dev
        )
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, n:]
        kw = {cache_kwarg(self.lm): cache} if cache is not None else {}
        out = self.lm(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            **kw,
        )
        return out.logits[:, -1, :].float(), output_cache(out), mask, pos[:, -1:] + 1
