"""Demo evaluation sets: official layout, deterministic, and right answers that really are."""

import json
import re

from storyrl.cli import main
from storyrl.data.demo_corpus import NAMES
from storyrl.evaluate.tasks import TASKS, read_items
from storyrl.evaluate.zero_shot import data_folder


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.jsonl"))}


def test_layout_determinism_and_fast_subsets(tmp_path):
    a, b, c = tmp_path / "a" / "evaluation_data", tmp_path / "b", tmp_path / "c"
    assert (
        main(["demo-eval", "--out", str(a), "--seed", "3", "--n-full", "40", "--n-fast", "10"]) == 0
    )
    main(["demo-eval", "--out", str(b), "--seed", "3", "--n-full", "40", "--n-fast", "10"])
    main(["demo-eval", "--out", str(c), "--seed", "4", "--n-full", "40", "--n-fast", "10"])
    assert _files(a) == _files(b) and _files(a) != _files(c)
    for name, task in TASKS.items():
        full = read_items(task, data_folder(a, task, "full"))
        fast = read_items(task, data_folder(a, task, "fast"))
        assert 0 < len(fast) < len(full)
        assert all(len(set(it.texts)) == len(it.texts) for it in full), name
        # Each fast file is the start of the full file of the same name.
        for f in data_folder(a, task, "fast").glob("*.jsonl"):
            full_text = (data_folder(a, task, "full") / f.name).read_text()
            assert full_text.startswith(f.read_text())
    uids = {it.uid for it in read_items(TASKS["blimp"], data_folder(a, TASKS["blimp"], "full"))}
    assert len(uids) == 5


def _simulate(prefix: str) -> dict[int, list[str]]:
    """Re-read the story of the boxes from the text alone."""
    state_part, *ops = [s.strip() for s in prefix.split(".") if s.strip()]
    boxes = {}
    for clause in state_part.split(", Box "):
        k, contents = re.match(r"(?:Box )?(\d) contains (.*)", clause).groups()
        boxes[int(k)] = (
            []
            if contents == "nothing"
            else [t.removeprefix("the ") for t in contents.split(" and ")]
        )
    for op in ops[:-1]:
        if m := re.match(r"Move the contents of Box (\d) to Box (\d)", op):
            src, dst = map(int, m.groups())
            boxes[dst] += boxes[src]
            boxes[src] = []
        elif m := re.match(r"Move the (\w+) from Box (\d) to Box (\d)", op):
            t, src, dst = m.group(1), int(m.group(2)), int(m.group(3))
            boxes[src].remove(t)
            boxes[dst].append(t)
        elif m := re.match(r"Put the (\w+) into Box (\d)", op):
            boxes[int(m.group(2))].append(m.group(1))
        else:
            raise AssertionError(f"unknown operation: {op}")
    return boxes


def test_answers_are_right(tmp_path):
    root = tmp_path / "evaluation_data"
    main(["demo-eval", "--out", str(root), "--n-full", "60"])
    et = data_folder(root, TASKS["entity_tracking"], "full")
    numops = set()
    for path in et.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            numops.add(row["numops"])
            box = int(re.search(r"Box (\d) contains$", row["input_prefix"]).group(1))
            got = _simulate(row["input_prefix"])[box]
            want = " nothing." if not got else " " + " and ".join(f"the {t}" for t in got) + "."
            assert row["options"][0] == want and want not in row["options"][1:]
    assert numops == {0, 1, 2, 3}
    for it in read_items(
        TASKS["blimp_supplement"], data_folder(root, TASKS["blimp_supplement"], "full")
    ):
        name = it.texts[0].split()[0]
        assert f" {NAMES[name]} never" in it.texts[0]
    art = (
        root / "full_eval" / "blimp_filtered" / "determiner_noun_agreement_indefinite_article.jsonl"
    )
    rows = [json.loads(x) for x in art.read_text().splitlines()]
    good_an = sum(" an " in r["sentence_good"] for r in rows)
    assert 0.3 < good_an / len(rows) < 0.7  # "a" alone does not win
