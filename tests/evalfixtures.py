"""Tiny real models and evaluation files in the official BabyLM formats, for the tests."""

import json
from pathlib import Path

import torch

from storyrl.testing import byte_bpe, fast_tokenizer, tiny_gpt2

TRAIN_TEXT = [
    "the cat sleeps . the cats sleep . a dog runs and the dogs run .",
    "Box 0 contains the apple , Box 1 contains the key . Move the apple to Box 1 .",
    "The chef saw a wug . The chef said that the wug was wuggy . wuggity wuggyness",
    "A robin is a bird . A bird can fly . The fox has fur and a tail .",
]


def build_tokenizer(folder: Path, bos: bool = False):
    """Byte-level BPE trained here; adds no special token unless `bos`."""
    from tokenizers import processors

    tok = byte_bpe(320, TRAIN_TEXT * 20)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return fast_tokenizer(tok, folder)


def build_model(folder: Path, bos: bool = False, seed: int = 0):
    """A random 2-layer GPT-2 saved with its tokenizer (a checkpoint folder)."""
    tok = build_tokenizer(folder, bos=bos)
    model = tiny_gpt2(len(tok), seed=seed, n_positions=256, initializer_range=0.3).eval()
    model.save_pretrained(folder)
    return model, tok


def hand_logprob(model, tok, text: str, completion: str) -> float:
    """Independent reference: one unbatched forward pass, log_softmax, and a plain loop."""
    enc = tok(text, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    start = len(text) - len(completion) + offsets[0][0]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    total = 0.0
    for t in range(1, len(ids)):
        if offsets[t][1] > start:
            total += logp[t - 1, ids[t]].item()
    return total


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def blimp_row(good, bad, uid, field="morphology", term="agreement"):
    return {
        "sentence_good": good,
        "sentence_bad": bad,
        "field": field,
        "UID": uid,
        "linguistics_term": term,
        "pairID": "0",
    }


def ewok_row(context, t1, t2, domain="physics"):
    return {
        "Context1": context,
        "Context2": context + " Not.",
        "Target1": t1,
        "Target2": t2,
        "Domain": domain,
        "ContextType": "concrete",
        "ContextDiff": "a",
        "TargetDiff": "b",
    }


def et_row(prefix, options, numops):
    return {"input_prefix": prefix, "options": options, "numops": numops}


def comps_row(good, bad, phrase):
    return {"prefix_acceptable": good, "prefix_unacceptable": bad, "property_phrase": phrase}


def wug_row(cands, ratio):
    return {"sentences": "\t".join(cands), "ratio": ratio}


def write_evaluation_data(root: Path) -> Path:
    """A small `evaluation_data/` with every task in both variants."""
    for variant, suffix in (("full_eval", "filtered"), ("fast_eval", "fast")):
        v = root / variant
        write_jsonl(
            v / f"blimp_{suffix}" / "agreement.jsonl",
            [
                blimp_row("the cat sleeps .", "the cat sleep .", "sv_agreement"),
                blimp_row("the cats sleep .", "the cats sleeps .", "sv_agreement"),
                blimp_row("a dog runs .", "a dogs runs .", "det_noun", "syntax_semantics", "det"),
            ],
        )
        write_jsonl(
            v / f"supplement_{suffix}" / "qa_congruence.jsonl",
            [
                {"sentence_good": "the dog runs .", "sentence_bad": "the dog run ."},
                {"sentence_good": "a cat sleeps .", "sentence_bad": "a cat sleep ."},
            ],
        )
        ewok = "ewok_filtered" if variant == "full_eval" else "ewok_fast"
        write_jsonl(
            v / ewok / "physics.jsonl",
            [
                ewok_row("The fox has fur.", "The fox is soft.", "The fox is wet."),
                ewok_row("A robin is a bird.", "A robin can fly.", "A robin can swim.", "biology"),
            ],
        )
        et = "entity_tracking" if variant == "full_eval" else "entity_tracking_fast"
        write_jsonl(
            v / et / "regular.jsonl",
            [
                et_row(
                    "Box 0 contains the apple. Box 0 contains",
                    [" the apple.", " the key.", " nothing."],
                    0,
                ),
                et_row(
                    "Box 1 contains the key. Box 1 contains",
                    [" the key.", " the apple.", " nothing."],
                    1,
                ),
            ],
        )
        write_jsonl(
            v / et / "ambiref.jsonl",
            [
                et_row("Box 0 contains the key. Box 0 contains", [" the key.", " the apple."], 0),
            ],
        )
        write_jsonl(
            v / "comps" / "comps_base.jsonl",
            [
                comps_row("A robin", "A stone", "can fly."),
                comps_row("The fox", "The box", "has fur and a tail."),
            ],
        )
        write_jsonl(
            v / "wug_adj_nominalization" / "wug_adj.jsonl",
            [
                wug_row(["the wuggity .", "the wuggyness ."], 0.2),
                wug_row(["the blickity .", "the blickness ."], 0.7),
                wug_row(["the dax .", "the daxness ."], 0.5),
            ],
        )
        write_jsonl(
            v / "wug_past_tense" / "wug_past.jsonl",
            [
                wug_row(["he wugged .", "he wug ."], 0.9),
                wug_row(["she spling .", "she splinged ."], 0.3),
                wug_row(["it glorped .", "it glorp ."], 0.6),
            ],
        )
    return root
