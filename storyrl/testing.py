"""Tiny real components for the tests and the benchmarks, built in seconds without a download:
tokenizers with the project's special tokens, random GPT-2 and Llama chat checkpoints, and the
`storyrl rl train` command line.

Nothing in the package imports this module. It lives in the package so that the benchmarks, run
as scripts from any folder, import it as the tests do. Heavy libraries are imported inside the
functions, so importing it costs nothing.
"""

import json

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
"""BabyLM's special tokens, in the order that gives them the paper tokenizer's ids 0-4 (bos 0,
pad 1, eos 2): every tiny GPT-2 here takes those ids."""

ROLES = {
    "<s>": "bos_token",
    "<pad>": "pad_token",
    "</s>": "eos_token",
    "<unk>": "unk_token",
    "<mask>": "mask_token",
}

WORDS = (
    "once upon a time in land far away there lived king queen moon star tale magical "
    "long let me tell you the and of"
).split()
"""The toy vocabulary: enough for a story prompt and a reward word ("moon")."""


def fast_tokenizer(tok, folder=None, specials=SPECIALS):
    """`tok` (a `tokenizers.Tokenizer`) as a transformers fast tokenizer whose special tokens are
    `specials` (a subset of SPECIALS), saved in `folder` when one is given."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **{ROLES[s]: s for s in specials})
    if folder is not None:
        fast.save_pretrained(folder)
    return fast


def word_tokenizer(words=WORDS, specials=SPECIALS):
    """A word-level tokenizer that splits on whitespace: `specials`, then `words`, in order."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate([*specials, *words])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return fast_tokenizer(tk, specials=specials)


def numbered_tokenizer(vocab: int, folder=None):
    """A word-level tokenizer of `vocab` entries (SPECIALS, then w0, w1, ...), for runs where only
    its size and special ids matter; saved in `folder` when one is given. It has no
    pre-tokenizer: a whole text is looked up as one entry."""
    from tokenizers import Tokenizer, models

    words = [*SPECIALS, *(f"w{i}" for i in range(vocab - len(SPECIALS)))]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    return fast_tokenizer(tk, folder)


def byte_bpe(vocab_size: int, texts=(), files=(), specials=SPECIALS, unk: str | None = "<unk>"):
    """A byte-level BPE `tokenizers.Tokenizer` trained on the strings `texts`, or on the text
    files `files` when given, with `specials` as its first ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    if files:
        tok.train([str(f) for f in files], trainer)
    else:
        tok.train_from_iterator(texts, trainer)
    return tok


def tiny_gpt2(vocab_size: int, seed: int | None = None, **config):
    """A random GPT-2 (2 layers, 2 heads, width 32, 64 positions unless `config` says otherwise)
    with SPECIALS' ids; the torch seed is set to `seed` first when one is given."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    shape = dict(n_layer=2, n_head=2, n_embd=32, n_positions=64)
    ids = dict(bos_token_id=0, pad_token_id=1, eos_token_id=2)
    if seed is not None:
        torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, **{**shape, **ids, **config}))


def tiny_checkpoint(path, tokenizer=None, seed: int = 0, **config):
    """A checkpoint folder: `tiny_gpt2` saved with its tokenizer (default `word_tokenizer()`)."""
    tok = tokenizer if tokenizer is not None else word_tokenizer()
    tiny_gpt2(len(tok), seed=seed, **config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
CHAT_SPECIALS = ("<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>")


def build_tiny_chat_model(
    folder, texts=(), hidden_size=32, heads=2, seed=0, digits=False, kv_heads=None
):
    """A random Llama chat model with its own byte-level BPE tokenizer (trained on the rubric and
    `texts`) and CHAT_TEMPLATE, saved in `folder`, which it returns; for the hf and vLLM
    teachers. `hidden_size / heads` is the head size (vLLM's attention kernels want e.g. 64);
    `kv_heads` below `heads` groups the keys and values as Llama 3 does (default: `heads`).

    `digits`: the weights are set so that every reply is space-separated digits 0-3 (" 2 0 3 1"),
    drawn at random: a judge whose replies are in the rubric's form, so the paper's regex finds
    scores in them (a random model's replies hold none)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from storyrl.stories.rubric import load_rubric
    from storyrl.stories.teacher import TeacherConfig

    rubric = load_rubric(TeacherConfig().template).text
    if digits:  # frequent enough that BPE learns the tokens " 0" .. " 3"
        texts = [*texts, " 0 1 2 3" * 100]
    tok = byte_bpe(400, [rubric, *texts, "0 1 2 3 0 0 0 3 3 3"], specials=CHAT_SPECIALS, unk=None)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=list(CHAT_SPECIALS[3:]),
    )
    hf_tok.chat_template = CHAT_TEMPLATE
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


def _reply_digits(model, ids):
    """Channel 0 of the residual stream is a constant (every embedding has 10 there, no layer
    writes to it); the final norm keeps only that channel, and the head maps it onto `ids` alone:
    the next token is one of `ids`, equally likely, whatever the context."""
    import torch

    assert None not in ids, "the tokenizer has no ' 0'..' 3' tokens"
    with torch.no_grad():
        m = model.model
        m.embed_tokens.weight[:, 0] = 10.0
        for layer in m.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        m.norm.weight.zero_()
        m.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[ids, 0] = 10.0


def rl_train_args(section: dict, checkpoint, output, **options) -> list[str]:
    """`storyrl rl train`'s arguments, without the program: `section` as --section's JSON, and
    each option as `--name value` (underscores in the name become dashes; a dict or a list is
    given as JSON, anything else as text)."""
    args = ["rl", "train", "--section", json.dumps(section)]
    args += ["--checkpoint", str(checkpoint), "--output", str(output)]
    for name, value in options.items():
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        args += [f"--{name.replace('_', '-')}", text]
    return args
