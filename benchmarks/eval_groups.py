"""One evaluation job per checkpoint against one job per group, side by side.

    python benchmarks/eval_groups.py --checkpoints results/pretrain/demo/ckpt-* \
        --data results/eval_data/demo [--configfile config/config.yaml] [--repeats 2] [--json OUT]

Runs the commands the workflow's rules run (`storyrl eval stories` and `storyrl eval
zero-shot-suite`, sections from the config): once per checkpoint in its own process (the
rules before the grouping), and once for all of them with `--models` (the group rules),
alternating the order over `--repeats` rounds so that a change in the machine's load hits both.
Prints wall seconds of each way and the files that are not byte-identical between them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def commands(cfg, ckpts: list[Path], data: Path, out: Path) -> dict[str, tuple[list, list]]:
    """{evaluation: (one command per checkpoint, the group's command)}."""

    def dump(section):
        return json.dumps(section.model_dump(mode="json"), sort_keys=True)

    teacher = cfg.teacher.model_dump(mode="json")
    teacher["template"] = str(REPO / teacher["template"])
    story = [
        "--section",
        dump(cfg.story_eval),
        "--rl",
        dump(cfg.rl),
        "--teacher",
        json.dumps(teacher),
        "--reward",
        dump(cfg.reward),
    ]
    zs = [
        "--data-path",
        str(data),
        "--tasks",
        *cfg.zero_shot.tasks,
        "--batch-size",
        str(cfg.zero_shot.batch_size),
        "--device",
        cfg.zero_shot.device,
        "--dtype",
        cfg.zero_shot.dtype,
    ]
    ids = [
        {"model": str(c), "model_id": f"m-{c.name}", "pretrain_words": 0, "rl_words": 0}
        for c in ckpts
    ]
    cli = [sys.executable, "-m", "storyrl.cli", "eval"]
    one_story = [
        [
            *cli,
            "stories",
            "--model",
            m["model"],
            "--output",
            str(out / "one" / "story" / f"{m['model_id']}.parquet"),
            "--model-id",
            m["model_id"],
            "--pretrain-words",
            "0",
            "--rl-words",
            "0",
            "--run-id",
            "",
            *story,
        ]
        for m in ids
    ]
    group_story = [
        *cli,
        "stories",
        "--models",
        json.dumps(
            [
                {
                    **m,
                    "run_id": "",
                    "output": str(out / "group" / "story" / f"{m['model_id']}.parquet"),
                }
                for m in ids
            ]
        ),
        *story,
    ]
    one_zs = [
        [
            *cli,
            "zero-shot-suite",
            "--model",
            m["model"],
            "--model-id",
            m["model_id"],
            "--pretrain-words",
            "0",
            "--rl-words",
            "0",
            "--variant",
            "fast",
            "--parquet",
            str(out / "one" / "eval" / f"{m['model_id']}.parquet"),
            "--output-dir",
            str(out / "one" / "eval" / "official" / m["model_id"]),
            *zs,
        ]
        for m in ids
    ]
    group_zs = [
        *cli,
        "zero-shot-suite",
        "--models",
        json.dumps(
            [
                {
                    **m,
                    "variants": ["fast"],
                    "parquet": str(out / "group" / "eval" / f"{m['model_id']}.parquet"),
                    "output_dir": str(out / "group" / "eval" / "official" / m["model_id"]),
                }
                for m in ids
            ]
        ),
        *zs,
    ]
    return {"story_eval": (one_story, group_story), "zero_shot": (one_zs, group_zs)}


def timed(cmds: list[list[str]]) -> float:
    t0 = time.perf_counter()
    for c in cmds:
        subprocess.run(c, check=True, cwd=REPO, capture_output=True)
    return time.perf_counter() - t0


def differing_files(a: Path, b: Path) -> list[str]:
    """Files that are in one folder only or differ in a byte ([] = identical)."""

    def files(d):
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}

    fa, fb = files(a), files(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", nargs="+", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path, help="evaluation_data/ folder")
    ap.add_argument("--configfile", nargs="+", type=Path, default=[REPO / "config" / "config.yaml"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from storyrl.config import load

    cfg = load(*args.configfile)
    ckpts = [c.resolve() for c in args.checkpoints]
    report = {"checkpoints": len(ckpts)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name, (one, group) in commands(cfg, ckpts, args.data.resolve(), out).items():
            times = {"per_model": [], "group": []}
            for r in range(args.repeats):
                order = ["per_model", "group"] if r % 2 == 0 else ["group", "per_model"]
                for way in order:
                    shutil.rmtree(
                        out / ("one" if way == "per_model" else "group"), ignore_errors=True
                    )
                    times[way].append(timed(one if way == "per_model" else [group]))
            sub = "story" if name == "story_eval" else "eval"
            report[name] = {
                "per_model_s": times["per_model"],
                "group_s": times["group"],
                "per_model_median_s": statistics.median(times["per_model"]),
                "group_median_s": statistics.median(times["group"]),
                "differing_files": differing_files(out / "one" / sub, out / "group" / sub),
            }
            print(
                f"{name}: {len(ckpts)} checkpoints, one process each "
                f"{report[name]['per_model_median_s']:.1f} s, one for all "
                f"{report[name]['group_median_s']:.1f} s (median of {args.repeats}); "
                f"files that differ: {report[name]['differing_files'] or 'none'}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
