"""A tiny randomly initialised Llama chat model with its own byte-level BPE tokenizer and chat
template, saved as a Hugging Face folder (no download). Used by the hf and vllm teacher tests."""

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from storyrl.stories.rubric import load_rubric
from storyrl.stories.teacher import TeacherConfig

TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>"]


def build_tiny_chat_model(
    folder, texts=(), hidden_size=32, heads=2, seed=0, digits=False, kv_heads=None
):
    """`hidden_size / heads` is the head size (vLLM's attention kernels want e.g. 64);
    `kv_heads` below `heads` groups the keys and values as Llama 3 does (default: `heads`).

    `digits`: the weights are set so that every reply is space-separated digits 0-3 (" 2 0 3 1"),
    drawn at random: a judge whose replies are in the rubric's form, so the paper's regex finds
    scores in them (a random model's replies hold none)."""
    rubric = load_rubric(TeacherConfig().template).text
    if digits:  # frequent enough that BPE learns the tokens " 0" .. " 3"
        texts = [*texts, " 0 1 2 3" * 100]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        [rubric, *texts, "0 1 2 3 0 0 0 3 3 3"],
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=SPECIAL,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=SPECIAL[3:],
    )
    hf_tok.chat_template = TEMPLATE
    hf_tok.save_pretrained(folder)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(hf_tok),
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=2,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads or heads,
            max_position_embeddings=4096,
            bos_token_id=hf_tok.bos_token_id,
            eos_token_id=hf_tok.eos_token_id,
            pad_token_id=hf_tok.pad_token_id,
        )
    )
    if digits:
        _reply_digits(model, [tok.token_to_id(f"\u0120{d}") for d in "0123"])
    model.save_pretrained(folder)
    return folder


@torch.no_grad()
def _reply_digits(model, ids):
    """Channel 0 of the residual stream is a constant (every embedding has 10 there, no layer
    writes to it); the final norm keeps only that channel, and the head maps it onto `ids` alone:
    the next token is one of `ids`, equally likely, whatever the context."""
    assert None not in ids, "the tokenizer has no ' 0'..' 3' tokens"
    m = model.model
    m.embed_tokens.weight[:, 0] = 10.0
    for layer in m.layers:
        layer.self_attn.o_proj.weight[0, :] = 0.0
        layer.mlp.down_proj.weight[0, :] = 0.0
    m.norm.weight.zero_()
    m.norm.weight[0] = 1.0
    model.lm_head.weight.zero_()
    model.lm_head.weight[ids, 0] = 10.0
