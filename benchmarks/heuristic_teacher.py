"""How fast is the heuristic (offline proxy) teacher? Target: 10,000 stories of 90 words in
under 10 s on one core. Side by side, in one run: the bare heuristic, the full Teacher.score
path (cache keys, parsing, failure check), and the same with a cold and a warm SQLite cache.

    PYTHONPATH=. python benchmarks/heuristic_teacher.py [--stories 10000] [--repeats 3]

Prints a table and writes benchmarks/out/heuristic_teacher.json.
"""

import argparse
import os
import random
import statistics
import tempfile
from pathlib import Path

from common import timed, write_json

from storyrl.stories.teacher import TeacherConfig, make_teacher
from storyrl.stories.teacher.heuristic import judge

PROMPT = "Let me tell you a long, magical tale. Once upon a time, in a faraway land,"
SENTENCES = [
    "there lived a brave princess named Lily.",
    "One day she found a golden key in the forest.",
    "The key opened a tiny door in an old oak tree.",
    "Behind the door a sleepy dragon was snoring.",
    "Lily gave the dragon a warm blanket and a red apple.",
    "The dragon smiled and they became friends.",
    "Every morning they flew over the silver lake.",
    "The villagers cheered when they saw them.",
    "A clever fox watched from the hill.",
    "He wanted the key for himself.",
    "the of green was quickly table she under and blue.",
    "The cat sat on the mat.",
    "Suddenly the wind began to sing a strange song.",
    "Nobody knew where the music came from.",
]


def make_stories(n: int, words: int = 90, seed: int = 0) -> list[str]:
    """n continuations of exactly `words` words, mixed from good, odd and repeated sentences."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = []
        while len(text) < words:
            text += rng.choice(SENTENCES).split()
        out.append(" " + " ".join(text[:words]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    conts = make_stories(args.stories)
    prompts = [PROMPT] * len(conts)
    assert all(len(c.split()) == 90 for c in conts)

    rows = {}
    rows["judge() only"] = timed(lambda: [judge(PROMPT, c) for c in conts], args.repeats)
    teacher = make_teacher(TeacherConfig(max_failure_share=1.0), seed=0)
    rows["Teacher.score, no cache"] = timed(lambda: teacher.score(prompts, conts), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        cold = []
        for i in range(args.repeats):
            t = make_teacher(TeacherConfig(max_failure_share=1.0), 0, f"{tmp}/cold{i}.sqlite")
            cold.append(timed(lambda t=t: t.score(prompts, conts), 1))
        rows["Teacher.score, cold cache"] = statistics.median(cold)
        rows["Teacher.score, warm cache"] = timed(lambda: t.score(prompts, conts), args.repeats)

    base = rows["judge() only"]
    print(f"{args.stories} stories of 90 words, one core, median of {args.repeats}")
    print(f"{'path':<28}{'seconds':>9}{'stories/s':>11}{'vs judge':>10}{'vs 10 s target':>16}")
    for name, s in rows.items():
        print(f"{name:<28}{s:>9.2f}{args.stories / s:>11.0f}{s / base:>9.2f}x{s / 10:>15.2f}x")
    write_json(
        Path(__file__).parent / "out" / "heuristic_teacher.json",
        {"stories": args.stories, "words": 90, "repeats": args.repeats, "seconds": rows},
    )


if __name__ == "__main__":
    main()
