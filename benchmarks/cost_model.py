"""GPU-hours of a plan, per rule: the work, the throughput it is divided by, and where that comes from.

    python benchmarks/cost_model.py --configfile config/paper.yaml my_paths.yaml \
        [--gpu-check JSON] [--precision fp32|bf16] [--teacher-speedup X] [--json]

Job counts come from the real dry run (`snakemake -n`, as benchmarks/slurm_plan.py makes it);
RL steps from the project's own ledger (teacher replies of `--reply-words` words). Throughput
comes from the GPU check's JSON where it measured the thing (by default the newest
benchmarks/measured/gpu_check_*.json: pretraining tokens/s; sampling, teacher and update seconds
of a PPO step at batch 360 with the teacher as the `hf` backend runs it by default, its prefix
shared; a 1,000-story evaluation) and from the update timings of benchmarks/ppo_precision.py
for a `--precision` the check did not run. Each row names the JSON and the keys its figures
come from; every other number is labelled "assumed", with the flag that changes it.
`--teacher-speedup` (default 1: none) is a what-if, never the headline. A second table sets
each GPU phase's time against its floor on one H200 (benchmarks/floors.py).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from common import MEASURED, REPO, newest_check


def rl_steps(cfg, reply_words: int) -> int:
    """Steps a run takes before the budget ends, counted by the project's ledger."""
    from storyrl.rl.ledger import Ledger
    from storyrl.stories.sampling import batch_prompts

    rl = cfg.rl
    prompts = batch_prompts(rl.prompts, rl.batch_size)
    replies = [" ".join(["1"] * reply_words)] * rl.batch_size
    ledger = Ledger(rl.budget)
    while ledger.fits(prompts, replies) and (rl.max_steps is None or ledger.steps < rl.max_steps):
        ledger.charge(prompts, replies, [])
    return ledger.steps


def eval_models(cfg) -> int:
    """Models the evaluations score: every pretraining milestone, RL checkpoint and final policy
    (the workflow's MODELS)."""
    from storyrl.config import planned_checkpoints

    return len(cfg.pretrain.runs) * len(cfg.pretrain.milestones) + sum(
        len(planned_checkpoints(r.rl)) + 1 for r in cfg.rl_plan().values()
    )


def full_set_models(cfg) -> int:
    """The largest RL start's pretraining checkpoint(s) and every final policy."""
    plan = cfg.rl_plan()
    if not plan:
        return len(cfg.pretrain.runs)
    top = max(r.checkpoint for r in plan.values())
    return len({r.pretrain_run for r in plan.values() if r.checkpoint == top}) + len(plan)


def eval_jobs(jobs: Counter, kind: str) -> int:
    """Jobs of an evaluation: its group rules (`<kind>_pre`, `<kind>_rl`, `<kind>_rl2`...), or
    the one rule of a plan that ran one job per model."""
    return sum(n for rule, n in jobs.items() if rule == kind or rule.startswith(kind + "_"))


def ppo_run(check: dict) -> tuple[dict, str]:
    """The PPO step the model prices, and where it comes from: the check's run with the
    shared-prefix teacher (the hf backend's default), else an older check's one run."""
    for key, label in (
        ("ppo_after", "GPU check, shared-prefix teacher"),
        ("ppo", "GPU check"),
        ("ppo_fp32", "GPU check"),
    ):
        if key in check and check[key].get("ok", True):
            return check[key], label
    raise KeyError("the GPU check's JSON holds no PPO run that succeeded")


def pretrain_run(check: dict, which: str) -> tuple[dict, str]:
    """`fast`: the check's second pretraining run (its `--pretrain-opts`); `base`: today's
    settings; `auto`: fast where it ran."""
    fast = check.get("pretrain_fast") or {}
    if which != "base" and fast.get("ok") and fast.get("tokens_per_s_median"):
        # No opts: the config's defaults (compiled, fused kernels).
        return fast, "GPU check, " + (" ".join(fast.get("opts") or []) or "the config's defaults")
    return check["pretrain"], "GPU check"


def update_seconds(check: dict, precision: str, bench: dict | None) -> tuple[float, str]:
    """Seconds of one PPO update at the paper's batch, and the measurement it comes from."""
    run, label = ppo_run(check)
    if run.get("update_arithmetic") == precision:
        return run["update_s"], f"{label} ({precision})"
    if bench:
        runs = {r["precision"]: r["median_s"] for r in bench["runs"]}
        if precision in runs:
            return runs[precision], f"ppo_precision.py on the GPU ({precision})"
    key = f"ppo_{precision}"
    if key in check and check[key].get("ok"):
        return check[key]["update_s"], f"GPU check ({precision})"
    return run["update_s"], f"{label} ({run.get('update_arithmetic', 'fp32')})"


def _name(args, attr: str, default: str) -> str:
    path = getattr(args, attr, None)
    return Path(path).name if path else default


def tokens_per_word(check: dict, args, src: str) -> tuple[float, list[str], list[str]]:
    """`--tokens-per-word` where given (assumed), else the check's demo corpus (measured)."""
    given = getattr(args, "tokens_per_word", None)
    if given is not None:
        return given, [], [f"{given:g} tokens a word (--tokens-per-word)"]
    return check["corpus"]["tokens_per_word"], [f"{src}:corpus.tokens_per_word"], []


def estimate(cfg, jobs: Counter, check: dict, args, bench: dict | None) -> list[dict]:
    """GPU-hours per rule. Each row names the JSON figures it reads (`measured`, as
    `file:key.path`) and every figure it does not measure (`assumed`, with its flag)."""
    src = _name(args, "gpu_check", "gpu_check.json")
    startup = f"{args.startup_s:g} s start-up a job (--startup-s: imports, model and teacher load)"
    rows = []
    pre, pre_source = pretrain_run(check, getattr(args, "pretrain_run", "auto"))
    pre_key = "pretrain_fast" if pre is check.get("pretrain_fast") else "pretrain"
    subset_words = args.corpus_words * cfg.corpora[next(iter(cfg.corpora))].fraction
    tpw, tpw_measured, tpw_assumed = tokens_per_word(check, args, src)
    tokens = cfg.pretrain.training.epochs * subset_words * tpw
    rows.append(
        {
            "rule": "pretrain",
            "jobs": jobs["pretrain"],
            "work": f"{tokens / 1e9:.2f}B tokens ({cfg.pretrain.training.epochs:g} epochs)",
            "seconds_per_job": tokens / pre["tokens_per_s_median"],
            "basis": f"{pre['tokens_per_s_median']:,} tokens/s measured ({pre_source}); "
            f"{args.corpus_words / 1e6:g}M corpus words (--corpus-words), "
            f"{tpw:g} tokens a word",
            "measured": [f"{src}:{pre_key}.tokens_per_s_median", *tpw_measured],
            "assumed": [
                f"{args.corpus_words / 1e6:g}M corpus words (--corpus-words)",
                *tpw_assumed,
            ],
        }
    )
    ppo, ppo_source = ppo_run(check)
    ppo_key = next(k for k in ("ppo_after", "ppo", "ppo_fp32") if check.get(k) is ppo)
    update, source = update_seconds(check, args.precision, bench)
    update_key = (
        f"{_name(args, 'ppo_bench', 'ppo_precision.json')}:runs[{args.precision}].median_s"
        if source.startswith("ppo_precision")
        else f"{src}:{ppo_key if ppo.get('update_s') == update else 'ppo_' + args.precision}"
        ".update_s"
    )
    step = ppo["sample_s"] + ppo["teacher_s"] / args.teacher_speedup + update
    steps = rl_steps(cfg, args.reply_words)
    # With rl_sharing.runs_per_gpu > 1 the runs go in pack jobs (rl_pack_<n>) of several runs
    # on one GPU; their overlap is not measured, so a pack costs its runs one after another.
    packs = sum(n for rule, n in jobs.items() if rule.startswith("rl_pack_"))
    runs_per_job = len(cfg.rl_plan()) / packs if packs else 1
    pack = check.get("pack2") or {}
    rows.append(
        {
            "rule": "rl",
            "jobs": packs or jobs["rl"],
            "work": f"{steps} steps x {cfg.rl.batch_size} stories"
            + (f", {runs_per_job:g} runs a job" if packs else ""),
            "seconds_per_job": runs_per_job * steps * step + args.startup_s,
            "basis": f"{step:.2f} s/step = sampling {ppo['sample_s']:.2f} + teacher "
            f"{ppo['teacher_s'] / args.teacher_speedup:.2f} ({ppo_source}"
            + (
                f", /{args.teacher_speedup:g} --teacher-speedup"
                if args.teacher_speedup != 1
                else ""
            )
            + f") + update {update:.2f} "
            f"({source}); {args.reply_words}-word replies (--reply-words)"
            + (
                "; the runs of a pack one after another (the check's in-process pair of runs "
                f"took {pack['pair_over_two_alone']:g}x two runs' time; not applied)"
                if packs and pack.get("ok") and pack.get("pair_over_two_alone")
                else "; the runs of a pack one after another (overlap not measured)"
                if packs
                else ""
            ),
            "measured": [f"{src}:{ppo_key}.sample_s", f"{src}:{ppo_key}.teacher_s", update_key],
            "assumed": [
                f"{args.reply_words}-word teacher replies (--reply-words)",
                startup,
                *(
                    [f"teacher time / {args.teacher_speedup:g} (--teacher-speedup, a what-if)"]
                    if args.teacher_speedup != 1
                    else []
                ),
                *(["the runs of a pack one after another (overlap not applied)"] if packs else []),
            ],
        }
    )
    # Evaluations run one job per group of models (workflow/rules/evaluate.smk): the work is per
    # model, the start-up per job. A plan of one job per model (before the grouping) has as
    # many jobs as models, and the same formula gives its cost.
    models = eval_models(cfg)
    story = check["story_eval"]
    per = story["seconds"] * cfg.story_eval.n_stories / story["stories"]
    n = eval_jobs(jobs, "story_eval")
    rows.append(
        {
            "rule": "story_eval",
            "jobs": n,
            "work": f"{models} models x {cfg.story_eval.n_stories} stories",
            "seconds_per_job": (models * per + n * args.startup_s) / max(n, 1),
            "basis": f"{per:.0f} s a model measured (GPU check) + {args.startup_s:g} s start-up "
            "a job assumed (--startup-s: imports, model and teacher load)",
            "measured": [f"{src}:story_eval.seconds", f"{src}:story_eval.stories"],
            "assumed": [startup],
        }
    )
    n = eval_jobs(jobs, "zero_shot")
    zs = check.get("zero_shot") or {}
    rows.append(
        {
            "rule": "zero_shot",
            "jobs": n,
            "work": f"{models} models: fast sets (full on {full_set_models(cfg)})",
            "seconds_per_job": (models * args.zero_shot_s + n * args.startup_s) / max(n, 1),
            "basis": f"{args.zero_shot_s:g} s a model assumed (--zero-shot-s"
            + (
                f"; the GPU check scored {zs['items_per_s']:g} items/s on generated data"
                if zs.get("ok") and zs.get("items_per_s")
                else "; not measured on a GPU"
            )
            + f") + {args.startup_s:g} s start-up a job",
            "measured": [],
            "assumed": [
                f"{args.zero_shot_s:g} s a model (--zero-shot-s; not measured at the real "
                "sets' sizes)",
                startup,
            ],
        }
    )
    # A second judge (config `agreement`): one job per judge that loads weights, scoring each RL
    # run's sample; priced at the shared-prefix teacher's seconds a story (the judge's own
    # model may be faster or slower than Llama-3.1-8B's shape).
    if jobs["teacher_agreement_gpu"]:
        ab = check.get("teacher_ab") or {}
        per_story = ab["shared"]["seconds"] / ab["stories"] if ab.get("ok") else float("nan")
        stories = len(cfg.rl_plan()) * cfg.agreement.stories_per_run
        rows.append(
            {
                "rule": "teacher_agreement_gpu",
                "jobs": jobs["teacher_agreement_gpu"],
                "work": f"{stories} stories",
                "seconds_per_job": stories * per_story + args.startup_s,
                "basis": f"{per_story * 360:.2f} s per 360 stories measured (GPU check, "
                f"teacher alone, shared prefix) + {args.startup_s:g} s start-up assumed",
                "measured": [f"{src}:teacher_ab.shared.seconds", f"{src}:teacher_ab.stories"],
                "assumed": [startup, "the judge's model as fast as Llama-3.1-8B's shape"],
            }
        )
    if jobs["official_glue"]:
        rows.append(
            {
                "rule": "official_glue",
                "jobs": jobs["official_glue"],
                "work": "one GLUE task",
                "seconds_per_job": args.glue_s,
                "basis": f"{args.glue_s:g} s assumed (--glue-s; not measured)",
                "measured": [],
                "assumed": [f"{args.glue_s:g} s a task (--glue-s; not measured)"],
            }
        )
    for r in rows:
        r["gpu_hours"] = r["jobs"] * r["seconds_per_job"] / 3600
    return rows


def phases(cfg, check: dict, args) -> list[dict]:
    """Each GPU phase's time now, its floor on one H200 (floors.py), and their ratio."""
    import floors

    src = _name(args, "gpu_check", "gpu_check.json")
    pre, _ = pretrain_run(check, getattr(args, "pretrain_run", "auto"))
    pre_key = "pretrain_fast" if pre is check.get("pretrain_fast") else "pretrain"
    subset_words = args.corpus_words * cfg.corpora[next(iter(cfg.corpora))].fraction
    tokens = cfg.pretrain.training.epochs * subset_words * tokens_per_word(check, args, src)[0]
    return floors.rows(cfg, check, src, pre, pre_key, tokens)


def markdown(rows: list[dict], phase_rows: list[dict] = ()) -> str:
    out = [
        "| rule | jobs | work per job | h per job | GPU-hours | measured (JSON: key) | assumed |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['rule']} | {r['jobs']} | {r['work']} | {r['seconds_per_job'] / 3600:.2f} "
            f"| {r['gpu_hours']:.1f} | {_cite(r['measured'])} "
            f"| {'; '.join('assumed: ' + a for a in r['assumed']) or '—'} |"
        )
    out.append(f"| **total** | | | | **{sum(r['gpu_hours'] for r in rows):.1f}** | | |")
    if phase_rows:
        out += [
            "",
            "| phase | work | now | floor on one H200 | now / floor | floor from | "
            "measured (JSON: key) |",
            "|---|---|---:|---:|---:|---|---|",
        ]
        for r in phase_rows:
            out.append(
                f"| {r['phase']} | {r['work']} | {_dur(r['now_s'])} | {_dur(r['floor_s'])} "
                f"| {r['ratio']:.1f} | {r['floor_basis']} | {_cite(r['measured'])} |"
            )
    return "\n".join(out)


def _cite(keys: list[str]) -> str:
    """`file: key, key` for each file."""
    by: dict[str, list[str]] = {}
    for k in keys:
        f, key = k.split(":", 1)
        by.setdefault(f, []).append(key)
    return "; ".join(f"{f}: {', '.join(ks)}" for f, ks in by.items()) or "—"


def _dur(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 600 else f"{s:.2f} s" if s >= 0.1 else f"{s:.3f} s"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", nargs="+", required=True, type=Path)
    ap.add_argument(
        "--gpu-check",
        type=Path,
        default=newest_check(),
        help="the GPU check's JSON (default: the newest benchmarks/measured/gpu_check_*.json)",
    )
    ap.add_argument(
        "--pretrain-run",
        choices=["auto", "base", "fast"],
        default="auto",
        help="which pretraining run of the check prices pretraining (auto: the fast one "
        "where it ran)",
    )
    ap.add_argument(
        "--ppo-bench", type=Path, default=MEASURED / "ppo_precision_h200_small_b360.json"
    )
    ap.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="the PPO update's arithmetic (config rl.ppo.precision)",
    )
    ap.add_argument(
        "--corpus-words", type=float, default=100e6, help="words of the corpus before the subset"
    )
    ap.add_argument(
        "--tokens-per-word",
        type=float,
        default=None,
        help="default: the check's demo corpus (corpus.tokens_per_word, measured)",
    )
    ap.add_argument("--reply-words", type=int, default=3)
    ap.add_argument(
        "--teacher-speedup",
        type=float,
        default=1.0,
        help="what-if: divide the measured teacher time (e.g. vLLM instead of the measured "
        "hf backend); 1 (the default) is the measured basis",
    )
    ap.add_argument("--startup-s", type=float, default=90.0)
    ap.add_argument("--zero-shot-s", type=float, default=120.0)
    ap.add_argument("--glue-s", type=float, default=1200.0)
    ap.add_argument("--json", action="store_true")
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)

    import sys

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import tempfile

    from slurm_plan import dry_run

    from storyrl.config import load

    cfg = load(*args.configfile)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = Counter(
            j["rule"] for j in dry_run([p.resolve() for p in args.configfile], Path(tmp))
        )
    check = json.loads(args.gpu_check.read_text())
    bench = (
        json.loads(args.ppo_bench.read_text())
        if args.ppo_bench and args.ppo_bench.exists()
        else None
    )
    rows = estimate(cfg, jobs, check, args, bench)
    floor_rows = phases(cfg, check, args)
    if args.json:
        print(json.dumps({"rules": rows, "phases": floor_rows}, indent=1))
    else:
        print(markdown(rows, floor_rows))


if __name__ == "__main__":
    main()
