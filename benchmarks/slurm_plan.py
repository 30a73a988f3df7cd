"""What each job of a plan gets on SLURM: environment, threads, runtime and memory, per rule.

    python benchmarks/slurm_plan.py --configfile config/paper.yaml my_paths.yaml [--all] [--json]

Threads, runtime and memory come from the real dry run, `snakemake -n --profile profiles/slurm`
with the workflow profile as snakemake loads it (run in a scratch directory: the checkout's
results/ is not touched). A dry run prints only a job's first attempt; the memory of the retries
is the profile's expression evaluated by snakemake for attempts 2 and 3. The environment is the
rule's `conda:` file when snakemake's own reading of the profiles deploys conda, else the shell
that submits the jobs. The dry run itself is made without conda deployment (STORYRL_SLURM_SDM=
none), so that the table can be printed where conda is not installed; that changes nothing in
the jobs' resources.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
SNAKEFILE = REPO / "Snakefile"
ATTEMPTS = (1, 2, 3)  # the first try and the profile's 2 retries
# These rules' GPU work runs in the official pipeline's own environment (config official.python);
# their conda environment only holds storyrl, which starts it.
HANDS_OFF = {
    "official_glue": "official.python",
    "official_reading": "official.python",
    "official_reading_fast": "official.python",
    "official_aoa": "official.python",
    "official_aoa_rl": "official.python",
}


def deployment(profile: Path = PROFILE) -> dict:
    """How snakemake, reading the profile and the workflow profile, deploys the rules' software."""
    from snakemake.cli import parse_args

    _, args = parse_args(["--snakefile", str(SNAKEFILE), "--profile", str(profile)])
    return {
        "methods": sorted(m.name.lower() for m in args.software_deployment_method),
        "keeps_pythonpath": bool(args.conda_not_block_search_path_envvars),
    }


def rule_info(configfiles: list[Path], workdir: Path) -> tuple[dict[str, str | None], set[str]]:
    """Each rule's conda file, relative to the repo (None: the rule declares none), and the
    local rules (run where snakemake runs: a dry run does not say which)."""
    # Reading the Snakefile in this process sets os.environ (common.smk) and may change the
    # working directory: both are put back, so the caller (e.g. a test session) is unaffected.
    env, cwd = dict(os.environ), os.getcwd()
    try:
        return _rule_info(configfiles, workdir)
    finally:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)


def _rule_info(configfiles: list[Path], workdir: Path) -> tuple[dict[str, str | None], set[str]]:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            snakefile=SNAKEFILE,
            config_settings=ConfigSettings(configfiles=configfiles),
            workdir=workdir,
        )
        workflow = wf._workflow  # noqa: SLF001 (the API lists neither rules nor local rules)
        envs = {}
        for rule in workflow.rules:
            env = rule.conda_env
            envs[rule.name] = (
                os.path.relpath(Path(rule.basedir, env).resolve(), REPO)
                if isinstance(env, str)
                else None
            )
        return envs, set(workflow._localrules)


def dry_run(
    configfiles: list[Path], workdir: Path, profile: Path = PROFILE, extra: tuple[str, ...] = ()
) -> list[dict]:
    """The jobs of `snakemake -n --profile ...`: rule, threads, resources."""
    env = dict(
        os.environ,
        STORYRL_SLURM_SDM="none",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--profile",
            str(profile),
            "--snakefile",
            str(SNAKEFILE),
            "--directory",
            str(workdir),
            "--configfile",
            *map(str, configfiles),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(f"dry run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    jobs, job = [], None
    for line in out.stdout.splitlines():
        line = line.strip()
        head = re.fullmatch(r"(?:local)?rule (\w+):", line)
        if head:
            job = {"rule": head.group(1), "threads": 1, "resources": {}}
            jobs.append(job)
        elif job and line.startswith("threads:"):
            job["threads"] = int(line.split(":", 1)[1])
        elif job and line.startswith("resources:"):
            for item in line.split(":", 1)[1].split(","):
                key, _, value = item.strip().partition("=")
                job["resources"][key] = int(value) if value.isdigit() else value
    return jobs


def retry_memory(rule: str, profile: Path = PROFILE) -> list[int] | None:
    """mem_mb of each attempt, as snakemake evaluates the profile's expression for the rule."""
    import yte
    from snakemake.resources import Resource

    with (profile / "config.yaml").open() as f:
        prof = yte.process_yaml(f, require_use_yte=True)
    expr = (
        prof.get("set-resources", {})
        .get(rule, {})
        .get("mem_mb", prof.get("default-resources", {}).get("mem_mb"))
    )
    if expr is None:
        return None
    return [
        int(
            Resource.cli_evaluator(
                "mem_mb", str(expr), wildcards=None, input=None, attempt=a, async_run=None
            )
        )
        for a in ATTEMPTS
    ]


def plan(
    configfiles: list[Path], profile: Path = PROFILE, extra: tuple[str, ...] = ()
) -> list[dict]:
    """One row per rule of the plan (its jobs share the rule's settings; the row says if not)."""
    configfiles = [Path(c).resolve() for c in configfiles]
    deploy = deployment(profile)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = dry_run(configfiles, Path(tmp), profile, extra)
        envs, local = rule_info(configfiles, Path(tmp))
    by_rule = defaultdict(list)
    for job in jobs:
        by_rule[job["rule"]].append(job)
    rows = []
    for rule, js in by_rule.items():
        distinct = {json.dumps([j["threads"], j["resources"]], sort_keys=True) for j in js}
        first = {**js[0], "local": rule in local}
        res = first["resources"]
        conda = "conda" in deploy["methods"] and envs.get(rule)
        rows.append(
            {
                "rule": rule,
                "jobs": len(js),
                "local": first["local"],
                "gpu": int(res.get("gpu", 0) or 0),
                "env": envs.get(rule) if conda else None,
                "environment": (f"conda {envs[rule]}" if conda else "the submitting shell's")
                + (f" + {HANDS_OFF[rule]}" if rule in HANDS_OFF else ""),
                "keeps_pythonpath": deploy["keeps_pythonpath"] if conda else True,
                "threads": first["threads"],
                "runtime_min": res.get("runtime"),
                "mem_mb": res.get("mem_mb"),
                "mem_mb_attempts": None if first["local"] else retry_memory(rule, profile),
                "uniform": len(distinct) == 1,
            }
        )
    return rows


def markdown(rows: list[dict], gpu_only: bool) -> str:
    lines = [
        "| rule | jobs | GPUs | environment | threads (CPUs) | runtime | memory, attempts 1/2/3 |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: (-r["gpu"], r["local"], r["rule"])):
        if gpu_only and not r["gpu"]:
            continue
        mem = (
            "-"
            if r["local"]
            else " / ".join(f"{m / 1000:g}" for m in r["mem_mb_attempts"] or [r["mem_mb"]]) + " GB"
        )
        runtime = "-" if r["local"] else f"{r['runtime_min'] / 60:g} h"
        threads = "local rule" if r["local"] else r["threads"]
        lines.append(
            f"| {r['rule']} | {r['jobs']} | {r['gpu']} | {r['environment']} | "
            f"{threads} | {runtime} | {mem} |" + ("" if r["uniform"] else " (jobs differ)")
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="+", required=True, type=Path)
    ap.add_argument("--profile", type=Path, default=PROFILE)
    ap.add_argument("--all", action="store_true", help="every rule, not only the GPU ones")
    ap.add_argument("--json", action="store_true", help="the rows as JSON")
    opts = ap.parse_args()
    rows = plan(opts.configfile, opts.profile)
    print(json.dumps(rows, indent=1) if opts.json else markdown(rows, gpu_only=not opts.all))


if __name__ == "__main__":
    main()
