"""Small evaluation sets in the official BabyLM layout, made from the demo corpus's grammar.

With no download, the default config still evaluates every checkpoint: `generate` writes an
`evaluation_data/` folder (`full_eval/` and `fast_eval/`, the official folder and field names)
whose items use the vocabulary and constructions of `storyrl.data.demo_corpus`, so a model trained on
that corpus can learn what they test:

- BLiMP format: subject-verb agreement (present tense, `was`/`were`, `is`/`are`), determiner-noun
  agreement (`this`/`these`) and the indefinite article (`a`/`an`), one file per UID;
- supplement format: pronoun gender after a named character (`Lily ... she`);
- EWoK format: a story sentence, then the right or wrong character/place continuation;
- COMPS format: the same property phrase after a right or wrong earlier mention of a thing;
- entity tracking: boxes with the corpus's things, moved or removed (`regular`,
  `move_contents`), 0-3 operations;
- WUG formats: nonce words with synthetic "human" ratios. These test the format only: the
  corpus has no nominalizations or nonce verbs, so their rho is noise.

The fast sets are the first items of each full set, as the official fast sets are subsets.
Deterministic in `seed`.
"""

import json
import random
from pathlib import Path

from storyrl.core.atomic import atomic_path
from storyrl.data.demo_corpus import (
    CREATURES,
    FEELINGS,
    NAMES,
    PLACE_ADJ,
    PLACES,
    THING_ADJ,
    THINGS,
    VERBS,
    _a,
)

# (folder in full_eval, folder in fast_eval)
FOLDERS = {
    "blimp": ("blimp_filtered", "blimp_fast"),
    "supplement": ("supplement_filtered", "supplement_fast"),
    "ewok": ("ewok_filtered", "ewok_fast"),
    "entity_tracking": ("entity_tracking", "entity_tracking_fast"),
    "comps": ("comps", "comps"),
    "wug_adj": ("wug_adj_nominalization", "wug_adj_nominalization"),
    "wug_past": ("wug_past_tense", "wug_past_tense"),
}


def _blimp(r: random.Random, n: int) -> dict[str, list[dict]]:
    def row(uid, field, term, good, bad, i):
        return {
            "sentence_good": good,
            "sentence_bad": bad,
            "field": field,
            "UID": uid,
            "linguistics_term": term,
            "pairID": str(i),
        }

    out = {}
    gens = {
        "subject_verb_agreement_present": (
            "morphology",
            "subject_verb_agreement",
            lambda: (
                lambda c, v: r.choice(
                    [
                        (f"the {c.sg} {v[0]} .", f"the {c.sg} {v[1]} ."),
                        (f"the {c.pl} {v[1]} .", f"the {c.pl} {v[0]} ."),
                    ]
                )
            )(r.choice(CREATURES), r.choice(VERBS)),
        ),
        "subject_verb_agreement_be_past": (
            "morphology",
            "subject_verb_agreement",
            lambda: (
                lambda c, f: r.choice(
                    [
                        (f"the {c.sg} was {f} .", f"the {c.sg} were {f} ."),
                        (f"the {c.pl} were {f} .", f"the {c.pl} was {f} ."),
                    ]
                )
            )(r.choice(CREATURES), r.choice(FEELINGS)),
        ),
        "subject_verb_agreement_be_question": (
            "morphology",
            "subject_verb_agreement",
            lambda: (
                lambda t: r.choice(
                    [
                        (f"where is the {t.sg} ?", f"where are the {t.sg} ?"),
                        (f"where are the {t.pl} ?", f"where is the {t.pl} ?"),
                    ]
                )
            )(r.choice(THINGS)),
        ),
        "determiner_noun_agreement_demonstrative": (
            "morphology",
            "determiner_noun_agreement",
            lambda: (
                lambda t, a: r.choice(
                    [
                        (f"this {t.sg} is {a} .", f"these {t.sg} is {a} ."),
                        (f"these {t.pl} are {a} .", f"this {t.pl} are {a} ."),
                    ]
                )
            )(r.choice(THINGS), r.choice(THING_ADJ)),
        ),
        "determiner_noun_agreement_indefinite_article": (
            "morphology",
            "determiner_noun_agreement",
            None,
        ),
    }
    for uid, (field, term, make) in gens.items():
        out[uid] = [
            row(uid, field, term, *(make() if make else _article(r, i % 2 == 0)), i)
            for i in range(n)
        ]
    return out


def _article(r: random.Random, vowel: bool) -> tuple[str, str]:
    """`a golden key` / `an old key`, half of the items each way, in the corpus's story line."""
    adj = r.choice([a for a in THING_ADJ if (a[0] in "aeiou") == vowel])
    wrong = ("a " if vowel else "an ") + adj
    lead = f"One day, {r.choice(list(NAMES))} went to the {r.choice(PLACES).sg} to look for"
    noun = r.choice(THINGS).sg
    return f"{lead} {_a(adj)} {noun}.", f"{lead} {wrong} {noun}."


def _supplement(r: random.Random, n: int) -> dict[str, list[dict]]:
    rows = []
    for _ in range(n):
        name, p = r.choice(list(NAMES.items()))
        q = "he" if p == "she" else "she"
        t = r.choice(THINGS).sg
        rows.append(
            {
                "sentence_good": f"{name} went home, and {p} never forgot the {t}.",
                "sentence_bad": f"{name} went home, and {q} never forgot the {t}.",
            }
        )
    return {"pronoun_gender": rows}


def _ewok(r: random.Random, n: int) -> dict[str, list[dict]]:
    rows = []
    for i in range(n):
        name, p = r.choice(list(NAMES.items()))
        if i % 2 == 0:  # who: the pronoun and possessive follow the named character
            q = "he" if p == "she" else "she"
            poss = {"she": "her", "he": "his"}
            home = f"{_a(r.choice(PLACE_ADJ))} {r.choice(PLACES).sg}"
            who = f"{_a(r.choice(['brave', 'kind', 'shy']))} {r.choice(CREATURES).sg}"
            ctx = f"Once upon a time, in a faraway land, there lived {who} named {name}."
            t1 = f"{p.capitalize()} lived in {home} with {poss[p]} mother."
            t2 = f"{q.capitalize()} lived in {home} with {poss[q]} mother."
            domain, cdiff, tdiff = "agent-properties", "name", "pronoun"
        else:  # where: the place of the next sentence is the one just visited
            there, other = r.sample(PLACES, 2)
            ctx = (
                f"One day, {name} went to the {there.sg} to look for "
                f"{_a(r.choice(THING_ADJ))} {r.choice(THINGS).sg}."
            )
            f = r.choice(FEELINGS)
            t1 = f"The {there.sg} was dark, and {name} was {f}."
            t2 = f"The {other.sg} was dark, and {name} was {f}."
            domain, cdiff, tdiff = "spatial-relations", "place", "place"
        rows.append(
            {
                "Domain": domain,
                "ContextType": "story",
                "ContextDiff": cdiff,
                "TargetDiff": tdiff,
                "Context1": ctx,
                "Context2": ctx,
                "Target1": t1,
                "Target2": t2,
            }
        )
    return {"demo_ewok": rows}


def _comps(r: random.Random, n: int) -> dict[str, list[dict]]:
    rows = []
    for _ in range(n):
        name = r.choice(list(NAMES))
        right, wrong = r.sample(THINGS, 2)
        place, adj = r.choice(PLACES).sg, r.choice(THING_ADJ)
        lead = f"One day, {name} went to the {place} to look for {_a(adj)}"
        rest = "Together they looked under every stone, and at last they found the"
        rows.append(
            {
                "prefix_acceptable": f"{lead} {right.sg}. {rest}",
                "prefix_unacceptable": f"{lead} {wrong.sg}. {rest}",
                "property_phrase": f"{right.sg}.",
            }
        )
    return {"comps_base": rows}


def _contents(box: list[str]) -> str:
    if not box:
        return " nothing."
    return " " + " and ".join(f"the {t}" for t in box) + "."


def _entity(r: random.Random, n: int) -> dict[str, list[dict]]:
    out = {"regular": [], "move_contents": []}
    for kind in out:
        for i in range(n):
            # "box" itself would read as a box; the boxes are numbered.
            things = r.sample([t.sg for t in THINGS if t.sg != "box"], 5)
            boxes = [[things[0]], [things[1], things[2]], []]
            state = ", ".join(f"Box {b} contains{_contents(c)[:-1]}" for b, c in enumerate(boxes))
            ops, numops = [], i % 4
            for _ in range(numops):
                src = r.choice([b for b in range(3) if boxes[b]] or [0])
                dst = r.choice([b for b in range(3) if b != src])
                if kind == "move_contents" and boxes[src]:
                    ops.append(f"Move the contents of Box {src} to Box {dst}.")
                    boxes[dst] += boxes[src]
                    boxes[src] = []
                elif boxes[src]:
                    t = r.choice(boxes[src])
                    ops.append(f"Move the {t} from Box {src} to Box {dst}.")
                    boxes[src].remove(t)
                    boxes[dst].append(t)
                else:
                    ops.append(f"Put the {things[3]} into Box {dst}.")
                    boxes[dst].append(things[3])
            q = r.randrange(3)
            right = _contents(boxes[q])
            wrong = list(dict.fromkeys(_contents(b) for b in boxes if _contents(b) != right))
            for extra in (_contents([things[4]]), " nothing."):
                if extra != right and extra not in wrong:
                    wrong.append(extra)
            prefix = " ".join([state + "."] + ops + [f"Box {q} contains"])
            out[kind].append(
                {
                    "input_prefix": prefix,
                    "options": [right] + wrong[:2],
                    "numops": numops,
                    "sample_id": i,
                }
            )
    return out


def _wug(r: random.Random, n: int, kind: str) -> dict[str, list[dict]]:
    rows = []
    for _ in range(n):
        stem = "".join(r.choice(c) for c in ("bcdfglmnprstvz", "aeiou", "bdgklmnprst"))
        c = r.choice(CREATURES).sg
        if kind == "adj":
            cands = [
                f"The {c} was very {stem}. The {stem}ity of the {c} surprised everyone.",
                f"The {c} was very {stem}. The {stem}ness of the {c} surprised everyone.",
            ]
        else:
            cands = [
                f"Every day the {c} likes to {stem}. Yesterday the {c} {stem}ed.",
                f"Every day the {c} likes to {stem}. Yesterday the {c} {stem}.",
            ]
        rows.append({"sentences": "\t".join(cands), "ratio": round(r.random(), 3)})
    return {f"wug_{kind}": rows}


def build(seed: int = 0, n_full: int = 200) -> dict[str, dict[str, list[dict]]]:
    """Task -> file stem -> rows, for the full sets."""
    r = random.Random(seed)
    return {
        "blimp": _blimp(r, n_full),
        "supplement": _supplement(r, n_full),
        "ewok": _ewok(r, n_full),
        "entity_tracking": _entity(r, n_full // 2),
        "comps": _comps(r, n_full),
        "wug_adj": _wug(r, n_full // 2, "adj"),
        "wug_past": _wug(r, n_full // 2, "past"),
    }


def generate(out_dir: str | Path, seed: int = 0, n_full: int = 200, n_fast: int = 50) -> dict:
    """Write `out_dir/{full_eval,fast_eval}/...`; return items per task and variant."""
    sets = build(seed, n_full)
    counts = {}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for task, files in sets.items():
            for variant, folder, k in (
                ("full_eval", FOLDERS[task][0], None),
                ("fast_eval", FOLDERS[task][1], n_fast),
            ):
                d = Path(tmp) / variant / folder
                d.mkdir(parents=True, exist_ok=True)
                for stem, rows in files.items():
                    rows = rows[:k] if k else rows
                    (d / f"{stem}.jsonl").write_text(
                        "".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8"
                    )
                    counts[(task, variant)] = counts.get((task, variant), 0) + len(rows)
    return counts
