"""Stories for the heuristic teacher's ordering test and benchmark (written for these tests)."""

import random

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"

_GOOD = (
    " there lived a brave princess named Lily. One day she found a golden key in the forest. "
    "She walked to the old castle and opened the big door. Inside the castle there was a "
    "sleeping dragon. Lily was not afraid. She gave the dragon a red apple and the dragon "
    "woke up. The dragon was happy and they became friends. Every day they played together "
    "in the garden."
)


def _shuffled(text: str, seed: int) -> str:
    words = text.split()
    random.Random(seed).shuffle(words)
    return " " + " ".join(words)


EMPTY_OR_PARTIAL = [
    "",
    "   ",
    " there",
    " there lived a king who",
    " there lived a princess who had a golden crown and a",
    ".",
]

WORD_SALAD = [
    " the of green was quickly table she under and blue. sky ran a the happy castle of. "
    "mountain bread him the was softly and. river the seven cold of danced.",
    " dog purple sing happily mountain. window eat green very fast tomorrow. cloud rock jump "
    "blue the the the. sleep garden quiet. he the she of with was and.",
    _shuffled(_GOOD, 0),
    _shuffled(_GOOD, 1),
    " and the of a he was. to in the she they of. him a the an his with. of of and but.",
]

REPETITIVE_LOOP = [
    " there lived a cat. The cat sat on the mat. The cat sat on the mat. The cat sat on the "
    "mat. The cat sat on the mat. The cat sat on the mat. The cat sat on the mat.",
    " there was a little girl. She was very happy. She was very happy. She was very happy. "
    "She was very happy. She was very happy. She was very happy. She was very happy.",
    " there lived a king. The king said hello. The king said hello. The king said hello. The "
    "king said hello. The king said hello. The king said hello. The king said hello.",
    " there was a boy. He went to the park and he went to the park and he went to the park "
    "and he went to the park and he went to the park and he went to the park.",
]

ONE_LINE_OR_BROKEN = [
    # What RL from a weak checkpoint drifts to when one line scores well: a single sentence, or
    # short lines with broken punctuation.
    " there lived a brave princess named Lily.",
    " there lived in a green dragon.",
    " there lived tiny owl named Tom. He lived a secret box .",
    ' is look forever," stone? were look?',
    ", the rabbits,, said stone say look .",
]

SHORT_COHERENT = [
    " there lived a brave princess named Lily. One day she found a golden key in the forest. "
    "She used it to open an old door.",
    " there was a small dragon who could not fly. He practised every morning on the hill. At "
    "last he flew over the village.",
    " a young fox lived near a river. Every night he watched the stars. He wished he could "
    "visit them.",
    " there lived an old baker. He baked bread for the whole town. The children loved his "
    "sweet rolls.",
]

LONG_VARIED = [
    " there lived a curious girl named Mira who collected lost buttons. One stormy evening, a "
    "silver button began to hum in her pocket. Mira followed its song through the dripping "
    "orchard to a crooked well. Inside, a tiny owl wearing spectacles was sorting buttons into "
    'glittering piles. "You found my missing one," he whispered gratefully. Together they '
    "stitched the buttons into a shimmering cloak that let its wearer hear the wind's secrets. "
    "From then on, Mira visited the well whenever the clouds turned purple.",
    " a lonely lighthouse keeper named Tomas painted the sea every morning. His paintings were "
    "grey, because the fog never lifted. One night a glowing whale rose beside the rocks and "
    "sang a low, trembling song. The fog curled away like smoke. Tomas rowed out with his "
    "brushes and painted the whale beneath a sky full of copper stars. When the villagers saw "
    "the picture, they climbed the cliffs to watch the water shine.",
    " a clumsy giant called Bram tried to bake a cake for his friend, a tiny mouse. He cracked "
    "forty eggs on the floor and sneezed flour across the valley. The mouse laughed so hard "
    "that she fell off the table. Then she showed Bram how to stir gently, with one careful "
    "finger. Their enormous cake was lopsided and sticky, but the whole forest came to share "
    "it, and Bram learned that small hands can teach big ones.",
    _GOOD.replace(
        "in the garden.",
        "in the garden, and soon the whole kingdom knew about the princess and her gentle friend.",
    ),
]
