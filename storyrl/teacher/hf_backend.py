"""Teacher run with transformers on this machine, prompted through the model's chat template."""

import logging

from storyrl.config import TeacherConfig
from storyrl.teacher.rubric import Rubric

log = logging.getLogger(__name__)


class HFBackend:
    name = "hf"
    server = None  # runs in this process

    def __init__(self, cfg: TeacherConfig, rubric: Rubric, seed: int, model=None, tokenizer=None):
        """Loads `cfg.model`; or takes a `model` and `tokenizer` already in memory (the GPU
        check builds a teacher of Llama's shape that has no folder)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg, self.rubric, self.seed = cfg, rubric, seed
        self.model = cfg.model
        self.sampling = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "seed": seed}
        from storyrl.checkpoints import resolve_device

        h = cfg.hf
        self.tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(cfg.model)
        if self.tok.chat_template is None:
            raise ValueError(f"teacher.model: {cfg.model} has no chat template")
        self.tok.padding_side = "left"  # generation continues right after each prompt
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        if model is not None:
            self.lm, self.device = model.eval(), str(next(model.parameters()).device)
            return
        device = str(resolve_device(h.device))
        dtype = {
            "auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
        }[h.dtype]
        self.lm = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).to(device).eval()
        self.device = device

    def chat_prompt(self, prompt: str, continuation: str) -> str:
        """The exact text the model reads: one user message through the chat template, then the
        assistant turn's opening."""
        return self.tok.apply_chat_template(
            [{"role": "user", "content": self.rubric.render(prompt, continuation)}],
            tokenize=False,
            add_generation_prompt=True,
        )

    def replies(self, prompts: list[str], continuations: list[str]) -> list[str | None]:
        import torch

        texts = [self.chat_prompt(p, c) for p, c in zip(prompts, continuations)]
        sample = self.cfg.temperature > 0
        gen = {
            "max_new_tokens": self.cfg.max_tokens,
            "do_sample": sample,
            "pad_token_id": self.tok.pad_token_id,
        }
        if sample:
            gen.update(temperature=self.cfg.temperature, top_k=0, top_p=1.0)
        out: list[str | None] = []
        bs = self.cfg.hf.batch_size
        # Same batches, same replies; in a fork of the RNG, because the student samples from the
        # global stream, which a reseed here would reset at every RL step.
        devices = (
            [torch.device(self.device).index or 0] if str(self.device).startswith("cuda") else []
        )
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            for i in range(0, len(texts), bs):
                # The chat template already holds the special tokens (BOS...): add none twice.
                enc = self.tok(
                    texts[i : i + bs], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.device)
                with torch.no_grad():
                    ids = self.lm.generate(**enc, **gen)
                new = ids[:, enc["input_ids"].shape[1] :]
                out.extend(self.tok.batch_decode(new, skip_special_tokens=True))
        return out
