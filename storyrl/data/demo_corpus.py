"""A synthetic corpus in the official BabyLM folder format, generated from a small grammar.

It stands in for BabyLM on machines with no download: six files named like the official ones
(`bnc_spoken`, `childes`, `gutenberg`, `open_subtitles`, `simple_wiki`, `switchboard`), with
their line conventions (CHILDES `*MOT:<TAB>` lines, `= = = ... = = =` document headers,
Switchboard `A:<TAB>` turns, one paragraph per line). The fairy tales are built so that a tiny
GPT-2 trained on them continues the paper's story prompt with little stories (a character, a
place, an event, an ending), and the grammar keeps number agreement consistent (`the fox was` /
`the foxes were`, `this box` / `these boxes`) so that minimal-pair evaluation sets made from the
same vocabulary (see `demo_eval.py`) measure something real.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from storyrl.core.units import count_words

SOURCES = ("bnc_spoken", "childes", "gutenberg", "open_subtitles", "simple_wiki", "switchboard")
# Share of the words per source; the fairy tales dominate on purpose.
SHARES = {
    "gutenberg": 0.42,
    "childes": 0.18,
    "simple_wiki": 0.14,
    "open_subtitles": 0.12,
    "bnc_spoken": 0.08,
    "switchboard": 0.06,
}

STORY_PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"


@dataclass(frozen=True)
class Noun:
    sg: str
    pl: str


CREATURES = [
    Noun(*p)
    for p in [
        ("princess", "princesses"),
        ("prince", "princes"),
        ("dragon", "dragons"),
        ("fox", "foxes"),
        ("knight", "knights"),
        ("wizard", "wizards"),
        ("mouse", "mice"),
        ("bear", "bears"),
        ("rabbit", "rabbits"),
        ("owl", "owls"),
        ("girl", "girls"),
        ("boy", "boys"),
        ("witch", "witches"),
        ("giant", "giants"),
        ("cat", "cats"),
        ("wolf", "wolves"),
    ]
]
THINGS = [
    Noun(*p)
    for p in [
        ("key", "keys"),
        ("map", "maps"),
        ("lamp", "lamps"),
        ("box", "boxes"),
        ("ball", "balls"),
        ("ring", "rings"),
        ("apple", "apples"),
        ("book", "books"),
        ("feather", "feathers"),
        ("shell", "shells"),
        ("crown", "crowns"),
        ("stone", "stones"),
        ("flower", "flowers"),
    ]
]
PLACES = [
    Noun(*p)
    for p in [
        ("forest", "forests"),
        ("castle", "castles"),
        ("village", "villages"),
        ("mountain", "mountains"),
        ("river", "rivers"),
        ("cave", "caves"),
        ("garden", "gardens"),
        ("meadow", "meadows"),
        ("tower", "towers"),
        ("lake", "lakes"),
        ("island", "islands"),
    ]
]
NAMES = {
    "Lily": "she",
    "Tom": "he",
    "Mia": "she",
    "Ben": "he",
    "Rosa": "she",
    "Sam": "he",
    "Anna": "she",
    "Leo": "he",
    "Ella": "she",
    "Max": "he",
    "Nora": "she",
    "Finn": "he",
}
CHAR_ADJ = [
    "brave",
    "little",
    "kind",
    "clever",
    "old",
    "young",
    "shy",
    "curious",
    "happy",
    "gentle",
    "proud",
    "sleepy",
]
THING_ADJ = ["golden", "magic", "shiny", "tiny", "old", "silver", "red", "secret", "heavy"]
PLACE_ADJ = ["dark", "quiet", "green", "tall", "deep", "sunny", "misty", "big", "far"]
FEELINGS = ["happy", "sad", "scared", "tired", "hungry", "surprised", "angry", "glad"]
# (present 3sg, present plural, past) so agreement can be tested in both tenses.
VERBS = [
    ("runs", "run", "ran"),
    ("sings", "sing", "sang"),
    ("sleeps", "sleep", "slept"),
    ("jumps", "jump", "jumped"),
    ("plays", "play", "played"),
    ("walks", "walk", "walked"),
    ("laughs", "laugh", "laughed"),
    ("dances", "dance", "danced"),
]
ENDINGS = [
    "And they lived happily ever after.",
    "From that day on, {a} and the {b} were best friends.",
    "{A} went home, and {p} never forgot the {t}.",
    "That night {a} slept well, dreaming of the {pl}.",
    "And so the {t} stayed in the {pl} forever. The end.",
]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


class _Grammar:
    def __init__(self, rng: random.Random):
        self.r = rng

    def pick(self, seq):
        return self.r.choice(seq)

    # -- fairy tales (gutenberg) ------------------------------------------------------
    def story(self) -> str:
        r = self.r
        name, p = self.pick(list(NAMES.items()))
        poss = "her" if p == "she" else "his"
        hero, friend = r.sample(CREATURES, 2)
        thing, place, home = self.pick(THINGS), *r.sample(PLACES, 2)
        adj, fadj, tadj = self.pick(CHAR_ADJ), self.pick(CHAR_ADJ), self.pick(THING_ADJ)
        opener = r.random()
        if opener < 0.35:
            s = [f"{STORY_PROMPT} there lived {_a(adj)} {hero.sg} named {name}."]
        elif opener < 0.7:
            s = [
                f"Once upon a time, in a faraway land, there lived {_a(adj)} {hero.sg} named {name}."
            ]
        else:
            s = [
                f"Once upon a time, in {_a(self.pick(PLACE_ADJ))} {home.sg}, there was "
                f"{_a(adj)} {hero.sg} called {name}."
            ]
        s.append(
            f"{p.capitalize()} lived in {_a(self.pick(PLACE_ADJ))} {home.sg} with "
            f"{poss} {self.pick(['mother', 'father', 'grandmother', 'two cats', 'old dog'])}."
        )
        s.append(f"One day, {name} went to the {place.sg} to look for {_a(tadj)} {thing.sg}.")
        middle = [
            f'On the way, {p} met {_a(fadj)} {friend.sg}. "Can you help me?" asked {name}. '
            f'"Yes, I can," said the {friend.sg}.',
            f"The {place.sg} was {self.pick(['dark', 'cold', 'quiet', 'big'])}, and {name} was "
            f"{self.pick(FEELINGS)}. Then {p} heard a sound. It was {_a(fadj)} {friend.sg}!",
            f"There {p} saw many {friend.pl}. The {friend.pl} were {self.pick(FEELINGS)} "
            f"because they had lost their {thing.pl}.",
        ]
        s.append(self.pick(middle))
        events = [
            f"Together they looked under every stone, and at last they found the {thing.sg}.",
            f"The {friend.sg} knew a secret path, so they walked to the top of a "
            f"{self.pick(['hill', 'tree', 'tower'])} and found the {thing.sg} there.",
            f"Suddenly a storm came. The rain was heavy, but {name} was brave, "
            f"and soon {p} found the {thing.sg} in a hole.",
            f"A {self.pick(['giant', 'wolf', 'witch'])} asked them a riddle. {name} thought "
            f"hard and gave the answer, so the {thing.sg} was theirs.",
        ]
        s.extend(r.sample(events, r.choice([1, 1, 2])))
        if r.random() < 0.5:
            s.append(
                f'"This {thing.sg} is {self.pick(["beautiful", "wonderful", "magic"])}," '
                f"said {name}. The {friend.sg} {self.pick(VERBS)[2]} with joy."
            )
        ending = self.pick(ENDINGS)
        s.append(ending.format(a=name, A=name, b=friend.sg, p=p, t=thing.sg, pl=place.sg))
        return " ".join(s)

    def title(self) -> str:
        return f"THE {self.pick(CHAR_ADJ).upper()} {self.pick(CREATURES).sg.upper()}"

    # -- child-directed speech (childes) ----------------------------------------------
    def childes_lines(self) -> list[str]:
        c, t = self.pick(CREATURES), self.pick(THINGS)
        v = self.pick(VERBS)
        mot = [
            f"do you want the {t.sg} ?",
            f"look at the {c.pl} !",
            f"the {c.sg} {v[0]} .",
            f"the {c.pl} {v[1]} .",
            f"where is the {t.sg} ?",
            f"where are the {t.pl} ?",
            f"this {t.sg} is {self.pick(THING_ADJ)} .",
            f"these {t.pl} are {self.pick(THING_ADJ)} .",
            f"can you give me that {t.sg} ?",
            f"those {t.pl} are yours .",
            f"the {c.sg} was {self.pick(FEELINGS)} .",
            f"the {c.pl} were {self.pick(FEELINGS)} .",
        ]
        chi = [f"{t.sg} !", f"more {t.pl} .", f"{c.sg} {v[0]} .", "no .", "yes .", f"my {t.sg} ."]
        lines = []
        for _ in range(self.r.randint(3, 8)):
            lines.append(f"*MOT:\t{self.pick(mot)}")
            if self.r.random() < 0.6:
                lines.append(f"*CHI:\t{self.pick(chi)}")
        return lines

    # -- encyclopedia (simple_wiki) ------------------------------------------------------
    def wiki_doc(self) -> list[str]:
        n = self.pick(CREATURES + PLACES)
        v = self.pick(VERBS)
        body = [
            f"{_a(n.sg).capitalize()} is often found in stories for children.",
            f"Many {n.pl} are {self.pick(PLACE_ADJ)}. This {n.sg} is {self.pick(PLACE_ADJ)}, "
            f"but these {n.pl} are {self.pick(PLACE_ADJ)}.",
            f"In old tales, the {n.sg} {v[0]} at night, and the {n.pl} {v[1]} in the day.",
            f"People say that the {n.pl} were {self.pick(FEELINGS)} when the {self.pick(THINGS).sg} was lost.",
        ]
        return [f"= = = {n.pl.capitalize()} = = =", " ".join(self.r.sample(body, 3))]

    # -- dialogue (open_subtitles, switchboard, bnc_spoken) ----------------------------------
    def subtitle(self) -> str:
        t, c = self.pick(THINGS), self.pick(CREATURES)
        return self.pick(
            [
                f"- Where is the {t.sg}?",
                f"- I saw the {c.sg} in the {self.pick(PLACES).sg}.",
                "I don't know.",
                f"Give me the {t.sg}!",
                f"The {c.pl} are coming!",
                "Run!",
                f"Is this your {t.sg}?",
                f"Those {t.pl} were here yesterday.",
                "Thank you.",
            ]
        )

    def switchboard_turns(self) -> list[str]:
        t = self.pick(THINGS)
        turns = [
            f"well i think the {t.pl} are nice",
            "yeah",
            "uh-huh",
            f"i had {_a(t.sg)} like that once",
            "right right",
            "oh really",
            f"the {self.pick(CREATURES).pl} were {self.pick(FEELINGS)} i guess",
        ]
        return [f"{'AB'[i % 2]}:\t{self.pick(turns)}" for i in range(self.r.randint(4, 10))]

    def bnc_line(self) -> str:
        t, pl = self.pick(THINGS), self.pick(PLACES)
        return self.pick(
            [
                f"well I went down to the {pl.sg} and bought some {t.pl}",
                f"she said the {t.sg} was in the kitchen",
                "oh I don't know",
                "mm",
                f"they were out in the {pl.sg} all day",
                f"have you seen my {t.sg}?",
            ]
        )


def generate(out_dir: str | Path, words: int, seed: int = 0, split: str = "train_demo") -> dict:
    """Write `out_dir/<split>/<source>.train` with about `words` words; return words per file.

    A small `dev/` split (1% of the size, another seed) is written beside it, as in the official
    release. Deterministic in (`words`, `seed`).
    """
    out_dir = Path(out_dir)
    counts = {}
    for folder, suffix, size, s in (
        (split, "train", words, seed),
        ("dev", "dev", max(words // 100, 200), seed + 1),
    ):
        g = _Grammar(random.Random(s))
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for source in SOURCES:
            target = int(size * SHARES[source])
            n, lines = 0, []
            while n < target:
                chunk = _chunk(g, source)
                n += sum(count_words(x) for x in chunk)
                lines.extend(chunk)
            path = out_dir / folder / f"{source}.{suffix}"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            if folder == split:
                counts[source] = n
    return counts


def _chunk(g: _Grammar, source: str) -> list[str]:
    if source == "gutenberg":
        return [g.title(), g.story()] if g.r.random() < 0.2 else [g.story()]
    if source == "childes":
        return [f"= = = childes/demo/{g.r.randint(1, 999):03d}.cha = = ="] + g.childes_lines()
    if source == "simple_wiki":
        return g.wiki_doc()
    if source == "switchboard":
        return g.switchboard_turns()
    if source == "open_subtitles":
        return [g.subtitle()]
    return [g.bnc_line()]
