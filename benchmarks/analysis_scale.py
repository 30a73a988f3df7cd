"""Analysis at the paper's scale: time every table and figure of `storyrl analysis all`, and
reading rollouts with vs without their text columns (side by side, same files).

Writes synthetic results of the paper's size (8 runs x 920 steps x 360 stories, 10 pretraining
checkpoints x 1,000 evaluated stories) through the real schemas, then builds everything.
    PYTHONPATH=$PWD python benchmarks/analysis_scale.py [--scale 1.0] [--repeat 3]
Prints a table; JSON in benchmarks/out/analysis_scale.json.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from analysis_synth import PAPER, PRE_CHECKPOINTS, RUNS, curve_score  # noqa: E402
from storyrl.analysis.registry import REGISTRY  # noqa: E402
from storyrl.analysis.targets import Data, make  # noqa: E402
from storyrl.config import AnalysisConfig  # noqa: E402
from storyrl.core import layout  # noqa: E402
from storyrl.core.schemas import SCHEMAS, make_metadata, read_table, write_table  # noqa: E402
from storyrl.core.units import words_label  # noqa: E402

WORDS = [f"w{i}" for i in range(400)]  # varied words so text compresses like text, roughly


def rollouts(rng, run_id, n_steps, batch, before, after):
    n = n_steps * batch
    step = np.repeat(np.arange(1, n_steps + 1), batch)
    t = step / n_steps
    crit = rng.binomial(3, np.clip((before + (after - before) * t) / 9, 0, 1)[:, None], (n, 3))
    n_words = rng.integers(30, 90, n)
    texts = [" ".join(rng.choice(WORDS, k)) for k in n_words[:2000]]
    cols = {
        "run_id": [run_id] * n,
        "step": step,
        "sample": np.tile(np.arange(batch), n_steps),
        "budget_words": step * batch * 3,
        "prompt": ["Once upon a time"] * n,
        "continuation": [texts[i % 2000] for i in range(n)],
        "teacher_reply": ["1 2 1"] * n,
        "readability": crit[:, 0],
        "coherence": crit[:, 1],
        "creativity": crit[:, 2],
        "parsed": np.ones(n, bool),
        "teacher_score": crit.sum(1) / 9,
        "length_bonus": n_words / 225,
        "reward": crit.sum(1) / 9,
        "n_tokens": n_words * 13 // 10,
        "n_words": n_words,
        "logprob_sum": -3.0 * n_words,
        "kl": rng.gamma(2, 1, n),
    }
    return cols


def steps_cols(ro, n_steps, batch):
    g = lambda a: np.asarray(a, dtype=float).reshape(n_steps, batch)  # noqa: E731
    cols = {name: np.zeros(n_steps) for name in SCHEMAS["steps"].names}
    cols.update(
        run_id=ro["run_id"][:n_steps],
        step=np.arange(1, n_steps + 1),
        budget_words=np.arange(1, n_steps + 1) * batch * 3,
        stories=np.arange(1, n_steps + 1) * batch,
        generated_words=np.zeros(n_steps, int),
        teacher_score_mean=g(ro["teacher_score"]).mean(1),
        response_words_mean=g(ro["n_words"]).mean(1),
        entropy=-g(ro["logprob_sum"]).mean(1),
        kl=np.linspace(0, 6, n_steps),
    )
    return cols


def write(root, scale, rng):
    n_steps = max(20, int(920 * scale))
    for words, seed in RUNS:
        run_id = f"{words_label(words)}-seed{seed}-base"
        ro = rollouts(rng, run_id, n_steps, 360, *PAPER[words])
        meta = {"run_id": run_id}
        write_table(
            layout.rollouts_path(root, run_id), "rollouts", ro, make_metadata("rollouts", **meta)
        )
        write_table(
            layout.steps_path(root, run_id),
            "steps",
            steps_cols(ro, n_steps, 360),
            make_metadata("steps", **meta),
        )
        layout.summary_path(root, run_id).write_text(json.dumps({"steps": n_steps}))
    for m in PRE_CHECKPOINTS:
        ro = rollouts(rng, "pre", 1, 1000, curve_score(m * 1e6), curve_score(m * 1e6))
        write_table(
            layout.story_eval_path(root, f"ckpt-{m}M"),
            "rollouts",
            ro,
            make_metadata("rollouts", pretrain_words=m * 1_000_000, rl_words=0),
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="share of the paper's 920 steps")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        t0 = time.perf_counter()
        write(root, args.scale, rng)
        print(
            f"wrote synthetic results in {time.perf_counter() - t0:.1f}s "
            f"({sum(p.stat().st_size for p in root.rglob('*')) / 1e6:.0f} MB)"
        )
        inp = layout.discover(root)
        rows = {}
        cols = [
            "run_id",
            "step",
            "readability",
            "coherence",
            "creativity",
            "parsed",
            "teacher_score",
        ]
        for label, c in (
            ("read rollouts, all columns", None),
            ("read rollouts, needed columns", cols),
        ):
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                for p in inp.rollouts:
                    read_table(p, "rollouts", c)
                times.append(time.perf_counter() - t)
            rows[label] = statistics.median(times)
        cfg = AnalysisConfig()
        data = Data(inp)
        t = time.perf_counter()
        data.steps, data.rollouts, data.story_eval  # noqa: B018 (load once, as `all` does)
        rows["load steps+rollouts+story eval"] = time.perf_counter() - t
        for (kind, name), target in REGISTRY.items():
            if not target.missing(inp):
                t = time.perf_counter()
                make(kind, name, inp, Path(tmp) / "out" / kind / name, cfg, data=data)
                rows[f"{kind} {name}"] = time.perf_counter() - t
    width = max(map(len, rows))
    print(f"{'what':<{width}}  seconds")
    for k, v in rows.items():
        print(f"{k:<{width}}  {v:7.2f}")
    full, needed = rows["read rollouts, all columns"], rows["read rollouts, needed columns"]
    print(f"reading only the needed columns: {full / needed:.1f}x faster")
    out = Path(__file__).parent / "out" / "analysis_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"scale": args.scale, "seconds": rows}, indent=2))


if __name__ == "__main__":
    main()
