"""What does going through SLURM cost per job? The same two-job workflow (one CPU rule, one
GPU-tagged rule, a chain) run locally and through `--profile profiles/slurm`, interleaved.

Needs a running cluster (`.ci/slurm-up`).

    python benchmarks/slurm_overhead.py [--repeats 3]

Prints a table and writes benchmarks/out/slurm_overhead.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = r"""
rule all:
    input: "b.txt"
rule a:
    output: "a.txt"
    shell: "seq 1 1000 > {output}"
rule b:
    input: "a.txt"
    output: "b.txt"
    resources: gpu=1
    shell: "awk '{{s += $1}} END {{print s}}' {input} > {output}"
"""


def timed_run(args: list[str]) -> float:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "Snakefile").write_text(SNAKEFILE)
        # No conda on the CI cluster (and nothing to deploy): jobs use this venv.
        env = dict(
            os.environ,
            PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            STORYRL_SLURM_SDM="none",
        )
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=d,
            env=env,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    opts = ap.parse_args()
    variants = {
        "local (--cores 2)": ["--cores", "2"],
        "slurm, status checks from 1 s": [
            "--profile",
            str(REPO / "profiles/slurm"),
            "--slurm-init-seconds-before-status-checks",
            "1",
        ],
    }
    times = {name: [] for name in variants}
    for _ in range(opts.repeats):  # interleaved, so machine noise hits both alike
        for name, args in variants.items():
            times[name].append(timed_run(args))
    local = statistics.median(times["local (--cores 2)"])
    rows = []
    print(
        f"{'variant':32} {'median s':>9} {'per job s':>9} {'x local':>8}   (2 jobs, {opts.repeats} runs)"
    )
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "variant": name,
                "median_s": med,
                "per_job_s": med / 2,
                "ratio": med / local,
                "runs_s": ts,
            }
        )
        print(f"{name:32} {med:9.1f} {med / 2:9.1f} {med / local:8.1f}")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "slurm_overhead.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
