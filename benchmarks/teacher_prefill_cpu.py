"""The hf teacher's two layouts after the shared prefix on a CPU: padded (the default) and packed
(`teacher.hf.packed`), on a random Llama of the given shape (GQA like Llama 3), a 339-token
prefix and stories of 85-146 tokens, one thread, fp32, greedy 6-token replies. Prints the median
seconds of three batches each and whether the replies agree.

    python benchmarks/teacher_prefill_cpu.py [hidden] [layers] [batch]   # default 256 4 16
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(hidden: int = 256, layers: int = 4, batch: int = 16) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from storyrl.stories.rubric import load_rubric
    from storyrl.stories.teacher import TeacherConfig
    from storyrl.stories.teacher.hf_backend import HFBackend
    from storyrl.testing import build_tiny_chat_model

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(build_tiny_chat_model(Path(tempfile.mkdtemp()), []))
    g = torch.Generator().manual_seed(0)
    prefix = torch.randint(10, 390, (339,), generator=g).tolist()
    lens = torch.randint(85, 147, (batch,), generator=g).tolist()
    rows = [prefix + torch.randint(10, 390, (k,), generator=g).tolist() for k in lens]
    res = {}
    for packed in (False, True):
        torch.manual_seed(0)
        shape = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=hidden,
            intermediate_size=int(3.5 * hidden),
            num_hidden_layers=layers,
            num_attention_heads=hidden // 64,
            num_key_value_heads=max(1, hidden // 256),
            max_position_embeddings=2048,
            eos_token_id=-1,  # no reply ends early: six steps each
        )
        cfg = TeacherConfig(
            backend="hf",
            model="random",
            temperature=0.0,
            max_tokens=6,
            hf={"device": "cpu", "dtype": "float32", "batch_size": batch, "packed": packed},
        )
        lm = LlamaForCausalLM(shape).eval()
        be = HFBackend(cfg, load_rubric(cfg.template), 5, model=lm, tokenizer=tok)
        be.generate_shared(rows[:4])  # warm-up
        times = []
        for _ in range(3):
            t = time.perf_counter()
            new, _ = be.generate_shared(rows)
            times.append(time.perf_counter() - t)
        res[packed] = (statistics.median(times), new)
    print(
        f"hidden={hidden} layers={layers} batch={batch} row tokens={sum(lens)}: "
        f"padded {res[False][0]:.3f} s, packed {res[True][0]:.3f} s, "
        f"same replies: {bool((res[False][1] == res[True][1]).all())}"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
