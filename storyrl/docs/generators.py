"""The generators of the pages' generated blocks (`storyrl.docs.blocks`), registered by name.

Each takes the `Generator` (the repository root and its committed snapshots) and returns the
block's Markdown. Numbers of the default run come from docs/data/default_run.json, job counts of
dry runs from docs/data/plans.json; what a script or the config gives cheaply (the paper plan's
models, the cost model's GPU-hours) is computed here by the script's own functions, so the docs
follow a change of the measurements or of the plan.
"""

import importlib.util
import sys
from collections import Counter
from functools import cached_property
from pathlib import Path

import pandas as pd

from storyrl.analysis.load import words_axis_label
from storyrl.docs import numbers as docs_numbers

GENERATORS: dict = {}


def generator(name: str):
    def register(fn):
        GENERATORS[name] = fn
        return fn

    return register


class Generator:
    """`generator(name)` -> the block's text; KeyError for a name no generator has."""

    def __init__(self, root):
        self.root = Path(root)

    def __call__(self, name: str) -> str:
        return GENERATORS[name](self)

    @cached_property
    def run(self) -> dict:
        return docs_numbers.load(self.root / docs_numbers.SNAPSHOT)

    @cached_property
    def plans(self) -> dict:
        return docs_numbers.load(self.root / docs_numbers.PLANS)

    @cached_property
    def paper(self):
        from storyrl.config import load

        # The plan's shape only: paths (weights, corpus) are not read to count or price it.
        return load(self.root / "config" / "paper.yaml")

    @cached_property
    def cost_model(self):
        """benchmarks/cost_model.py, the script the docs quote (it imports its folder's
        `common`)."""
        folder = self.root / "benchmarks"
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
        spec = importlib.util.spec_from_file_location("cost_model", folder / "cost_model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def cost(self, plan: str, precision: str = "bf16", gpu_check=None) -> list[dict]:
        """cost_model's rows for a recorded plan, with the script's default assumptions."""
        import json

        cm = self.cost_model
        argv = ["--configfile", "config/paper.yaml", "--precision", precision]
        args = cm.build_parser().parse_args(
            argv + (["--gpu-check", str(gpu_check)] if gpu_check else [])
        )
        check = json.loads(Path(args.gpu_check).read_text())
        bench = json.loads(args.ppo_bench.read_text()) if args.ppo_bench.exists() else None
        return cm.estimate(self.paper, Counter(self.plans[plan]), check, args, bench)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _total(rows) -> float:
    return sum(r["gpu_hours"] for r in rows)


# ------------------------------------------------------------------------- the default run
def _runs(g: Generator) -> list[dict]:
    return g.run["rl"]


def _label(words: int) -> str:
    return words_axis_label(words)


@generator("rl-table")
def rl_table(g: Generator) -> str:
    rows = ["| run | first tenth | last tenth |", "|---|---|---|"]
    rows += [
        f"| {r['run_id']} | {r['first_tenth']:.3f} | {r['last_tenth']:.3f} |" for r in _runs(g)
    ]
    return "\n".join(rows)


@generator("rl-steps")
def rl_steps(g: Generator) -> str:
    steps = sorted({r["steps"] for r in _runs(g)})
    stories = sorted({r["stories_per_step"] for r in _runs(g)})
    span = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    return f"{span} steps of {'/'.join(map(str, stories))} stories"


@generator("rl-lengths")
def rl_lengths(g: Generator) -> str:
    return "; ".join(
        f"{_label(r['pretrain_words'])}: {r['words_first_step']:.1f} → {r['words_last_step']:.1f}"
        for r in _runs(g)
    )


@generator("zero-shot-pre")
def zero_shot_pre(g: Generator) -> str:
    return ", ".join(f"{r['checkpoint']} {r['accuracy']:.1f}" for r in g.run["zero_shot"])


def _story(g: Generator, run: dict, group: str) -> dict:
    return next(s for s in g.run["stories"] if s["run_id"] == run["run_id"] and s["group"] == group)


def _scored(s: dict) -> str:
    crit = " ".join(str(s[c]) for c in ("readability", "coherence", "creativity"))
    return f"score {s['score']:g}/9 (teacher `{crit}`, {s['words']} words)"


@generator("story-run")
def story_run(g: Generator) -> str:
    run = _runs(g)[-1]
    return f'run `{run["run_id"]}`, after the prompt "{_story(g, run, "first")["prompt"]}"'


@generator("story-before")
def story_before(g: Generator) -> str:
    run = _runs(g)[-1]
    s = _story(g, run, "first")
    return f'before RL (step {s["step"]} of {run["steps"]}), {_scored(s)}: "{s["story"]}"'


@generator("story-after")
def story_after(g: Generator) -> str:
    run = _runs(g)[-1]
    s = _story(g, run, "last")
    return f'after RL (step {s["step"]}), {_scored(s)}: "{s["story"]}"'


@generator("story-weak")
def story_weak(g: Generator) -> str:
    # The weak spot: the best-scored of the weakest run's late stories the table shows.
    run = _runs(g)[0]
    late = [s for s in g.run["stories"] if s["run_id"] == run["run_id"] and s["group"] == "last"]
    s = max(late, key=lambda s: s["score"])
    return f'weakest run (`{run["run_id"]}`): late in training "{s["story"]}" gets {_scored(s)}'


def _agreement(g: Generator) -> pd.DataFrame:
    table = g.run["agreement"]
    return pd.DataFrame(table["rows"], columns=table["columns"])


@generator("agreement-table")
def agreement_table(g: Generator) -> str:
    # As storyrl.analysis.tables.write_table renders results/tables/teacher_agreement.md.
    return _agreement(g).to_markdown(index=False, floatfmt=".2f", missingval="–")


@generator("agreement-sample")
def agreement_sample(g: Generator) -> str:
    t = _agreement(g)
    stories, runs = int(t.stories.max()), len(_runs(g))
    return f"{stories} stories, {stories // runs} from each of the {runs} RL runs"


def _signed(x: float) -> str:
    """+0.12 / −0.43: a typographic minus, as the docs' prose writes differences."""
    return f"{x:+.2f}".replace("-", "−")


@generator("agreement-summary")
def agreement_summary(g: Generator) -> str:
    t = _agreement(g)
    crit = t[t.measure != "total"]
    most = crit.loc[crit.mean_diff.abs().idxmax()]
    # The sentence says what the numbers show: one direction only when every criterion has it.
    side = (
        "lower on every criterion"
        if (crit.mean_diff < 0).all()
        else "higher on every criterion"
        if (crit.mean_diff > 0).all()
        else "lower on some criteria and higher on others"
    )
    return (
        f"(ρ {t.spearman_rho.min():.2f}-{t.spearman_rho.max():.2f}) and sits {side}, most "
        f"apart on {most.measure} ({_signed(most.mean_diff)} points of 3, where κ is "
        f"{most.kappa_quadratic:.2f})"
    )


# ------------------------------------------------------------------------------ the plans
@generator("default-jobs")
def default_jobs(g: Generator) -> str:
    return f"{sum(g.plans['default'].values())} jobs"


@generator("paper-plan")
def paper_plan(g: Generator) -> str:
    jobs = g.plans["paper"]
    models = g.cost_model.eval_models(g.paper)
    return (
        f"{_n(jobs['pretrain'], 'pretraining run')}, {_n(jobs['rl'], 'RL run')}, "
        f"{models} models evaluated "
        f"in {jobs['story_eval_pre'] + jobs['story_eval_rl']} story and "
        f"{jobs['zero_shot_pre'] + jobs['zero_shot_rl']} zero-shot jobs, "
        f"{jobs['table'] + jobs['figure']} tables and figures"
    )


@generator("paper-cost")
def paper_cost(g: Generator) -> str:
    rows = {r["rule"]: r for r in g.cost("paper")}
    official = g.cost("paper_official")
    glue = next(r for r in official if r["rule"] == "official_glue")
    return (
        f"about {_total(rows.values()):.0f} GPU-hours with a plain-transformers teacher, "
        f"{rows['rl']['gpu_hours']:.0f} of them RL ({_total(official):.0f} with the official "
        f"pipeline's {glue['jobs']} GLUE fine-tuning jobs, {glue['seconds_per_job']:,.0f} s each "
        "assumed)"
    )


@generator("paper-eval-groups")
def paper_eval_groups(g: Generator) -> str:
    jobs = g.plans["paper"]
    models = g.cost_model.eval_models(g.paper)
    groups = jobs["story_eval_pre"] + jobs["story_eval_rl"]
    return f"{models} models of the paper: {groups} jobs each instead of {models}"
