"""One entry point per table and figure, and `build_all` that rebuilds every one of them from a
results folder (see `layout`) with no training, teacher or GPU.

Python:  make("figure", "rl_dynamics", Inputs(steps=[...]), "results/figures/rl_dynamics.pdf")
CLI:     storyrl analysis figure rl_dynamics --steps results/rl/*/steps.parquet \\
             --output results/figures/rl_dynamics.pdf
         storyrl analysis all --results results --output results
"""

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from storyrl.analysis import layout
from storyrl.config import AnalysisConfig
from storyrl.analysis import AnalysisError

log = logging.getLogger(__name__)


class Data:
    """The inputs, read once and only when a target asks for them."""

    def __init__(self, inputs: layout.Inputs, overrides: dict | None = None):
        self.inputs, self.overrides = inputs, overrides or {}

    @cached_property
    def steps(self):
        from storyrl.analysis.load import load_steps
        return load_steps(self.inputs.steps, self.overrides)

    @cached_property
    def rollouts(self):
        from storyrl.analysis.load import load_rollouts
        return load_rollouts(self.inputs.rollouts, self.overrides) if self.inputs.rollouts else None

    @cached_property
    def story_eval(self):
        from storyrl.analysis.load import load_story_eval
        return load_story_eval(self.inputs.story_eval, self.overrides)

    @cached_property
    def eval(self):
        from storyrl.analysis.load import load_eval
        return load_eval(self.inputs.eval, self.overrides)

    @cached_property
    def summaries(self):
        from storyrl.analysis.load import load_summaries
        return load_summaries(self.inputs.summaries, self.overrides)

    @cached_property
    def baselines(self):
        from storyrl.analysis.load import load_baselines
        return load_baselines(self.inputs.baselines) if self.inputs.baselines else None


@dataclass(frozen=True)
class Target:
    kind: str
    """`table` or `figure`."""
    name: str
    needs: tuple[str, ...]
    """Inputs (fields of `layout.Inputs`) without which it cannot be built; `a|b`: either."""
    build: Callable
    """build(data, output, cfg, **options) -> written paths."""
    doc: str
    uses: tuple[str, ...] = ()
    """Further inputs used when present (a rule declares needs + uses as its inputs)."""

    def missing(self, inputs: layout.Inputs) -> list[str]:
        return [n for n in self.needs if not any(getattr(inputs, a) for a in n.split("|"))]


def _t_before_after(d, out, cfg):
    from storyrl.analysis.tables import before_after_table, write_table
    return write_table(before_after_table(d.steps, d.rollouts, cfg), out, hide=["pretrain_words"])


def _t_equivalence(d, out, cfg):
    from storyrl.analysis.tables import compute_equivalence, write_table
    table, _ = compute_equivalence(d.story_eval, d.steps, d.rollouts, cfg)
    hide = ["pretrain_words", "equivalent_words", "status", "above_max_share", "curve_source"]
    return write_table(table, out, hide=hide,
                       words=["rl_words", "extra_words", "extra_lo", "extra_hi", "per_1M_rl_words"])


def _t_babylm(d, out, cfg, pre_model=None, rl_models=None):
    from storyrl.analysis.tables import babylm_table, write_table
    return write_table(babylm_table(d.eval, d.baselines, cfg, pre_model, rl_models), out,
                       hide=["task_id"])


def _t_ledger(d, out, cfg):
    from storyrl.analysis.tables import ledger_table, write_table
    return write_table(ledger_table(d.summaries, d.steps if d.inputs.steps else None), out,
                       words=["pretrain_words", "budget"])


def _fig(module, name):
    def build(d, out, cfg, **opts):
        import importlib
        f = getattr(importlib.import_module(f"storyrl.analysis.{module}"), name)
        # Data attributes are read lazily: only the inputs this figure takes are loaded.
        args = {
            "before_after": ("steps", "rollouts"), "rl_dynamics": ("steps",),
            "score_shares": ("rollouts",), "entropy": ("steps",),
            "equivalence": ("story_eval", "steps", "rollouts"), "babylm": ("eval", "baselines"),
            "fast_eval_pretrain": ("eval",), "fast_eval_rl": ("eval",),
        }[name]
        return f(*(getattr(d, a) for a in args), out, cfg, **opts)
    return build


TARGETS: dict[tuple[str, str], Target] = {(t.kind, t.name): t for t in [
    Target("table", "before_after", ("steps",), _t_before_after,
           "teacher score (0-9) of the first/last steps per pretraining size, 95% bootstrap",
           ("rollouts",)),
    Target("table", "equivalence", ("steps",), _t_equivalence,
           "pretraining words that reach each run's after-RL score ('1M RL words ≈ N'), by the "
           "paper's method (nearest checkpoint) and ours (monotone curve, bootstrap CI)",
           ("story_eval", "rollouts")),
    Target("table", "babylm", ("eval",), _t_babylm,
           "BabyLM full sets: baselines, pre, RL and the RL delta per task", ("baselines",)),
    Target("table", "ledger", ("summaries|steps",), _t_ledger, "budget ledger of every RL run",
           ("summaries", "steps")),
    Target("figure", "before_after", ("steps",), _fig("figures_rl", "before_after"),
           "teacher score and story length before/after RL against pretraining words",
           ("rollouts",)),
    Target("figure", "rl_dynamics", ("steps",), _fig("figures_rl", "rl_dynamics"),
           "teacher score, story length and KL against interaction words"),
    Target("figure", "score_shares", ("rollouts",), _fig("figures_rl", "score_shares"),
           "stacked shares of scores 0-3 per criterion over interaction words"),
    Target("figure", "entropy", ("steps",), _fig("figures_rl", "entropy"),
           "story length and teacher score against entropy per word"),
    Target("figure", "equivalence", ("steps",), _fig("figures_rl", "equivalence"),
           "each run's after-RL score against the checkpoints: the paper's nearest checkpoint and "
           "our monotone curve", ("story_eval", "rollouts")),
    Target("figure", "babylm", ("eval",), _fig("figures_eval", "babylm"),
           "BabyLM bars with the RL delta", ("baselines",)),
    Target("figure", "fast_eval_pretrain", ("eval",), _fig("figures_eval", "fast_eval_pretrain"),
           "fast-set accuracy over pretraining checkpoints"),
    Target("figure", "fast_eval_rl", ("eval",), _fig("figures_eval", "fast_eval_rl"),
           "fast-set accuracy over RL checkpoints"),
]}


def make(kind: str, name: str, inputs: layout.Inputs, output, cfg: AnalysisConfig | None = None,
         overrides: dict | None = None, data: Data | None = None, **options) -> list[Path]:
    """Build one table or figure from explicit input paths into `output` (suffix optional)."""
    if (kind, name) not in TARGETS:
        known = ", ".join(n for k, n in TARGETS if k == kind)
        raise AnalysisError(f"unknown {kind} '{name}' (known: {known})")
    t = TARGETS[kind, name]
    missing = t.missing(inputs)
    if missing:
        raise AnalysisError(f"{kind} {name}: no input files for {', '.join(missing)}")
    return t.build(data or Data(inputs, overrides), output, cfg or AnalysisConfig(), **options)


def build_all(results, output, cfg: AnalysisConfig | None = None, strict: bool = False) -> dict:
    """Every table and figure from the files under `results` into `output`/tables and
    `output`/figures. A target that cannot be built from what is there (inputs absent, ids
    unknown, an empty steps table: an AnalysisError) is skipped with a warning, unless `strict`.
    An input file that cannot be read or lacks a column (SchemaError) aborts the whole build,
    as does a results folder that does not exist or from which nothing can be built.
    Returns {"written": [paths], "skipped": {target: reason}}."""
    if not Path(results).is_dir():
        raise AnalysisError(f"results folder {results} does not exist")
    inputs = layout.discover(results)
    data = Data(inputs)
    written, skipped = [], {}
    for (kind, name), t in TARGETS.items():
        out = (layout.table_path if kind == "table" else layout.figure_path)(output, name)
        try:
            written += make(kind, name, inputs, out, cfg, data=data)
        except AnalysisError as err:
            if strict:
                raise
            skipped[f"{kind}/{name}"] = str(err)
            log.warning("skipped %s %s: %s", kind, name, err)
    if not written:
        reasons = "; ".join(f"{t}: {r}" for t, r in skipped.items())
        raise AnalysisError(f"nothing could be built from {results} ({reasons})")
    return {"written": written, "skipped": skipped}


# ------------------------------------------------------------------------------ CLI
def add_parser(sub, section_type) -> None:
    p = sub.add_parser("analysis", help="tables and figures from Parquet results")
    asub = p.add_subparsers(dest="analysis_command", required=True)

    a = asub.add_parser("all", help="rebuild every table and figure from a results folder")
    a.add_argument("--results", required=True, help="folder in the layout of storyrl.analysis.layout")
    a.add_argument("--output", required=True, help="writes tables/ and figures/ here")
    a.add_argument("--section", type=section_type(AnalysisConfig), default=None,
                   help="the analysis section as JSON")
    a.add_argument("--config", help="or: a workflow config YAML whose `analysis` section to use "
                                    "(e.g. the one that made the results)")
    a.add_argument("--strict", action="store_true", help="fail instead of skipping a target")
    a.set_defaults(func=cli_all)

    for kind in ("table", "figure"):
        names = [n for k, n in TARGETS if k == kind]
        q = asub.add_parser(kind, help=f"one {kind}: " + ", ".join(names))
        q.add_argument("name", choices=names)
        q.add_argument("--output", required=True,
                       help="e.g. results/tables/x.csv (.md, .tex too) or results/figures/x.pdf (.png too)")
        for field in ("steps", "rollouts", "summaries", "story-eval", "eval"):
            q.add_argument(f"--{field}", nargs="+", default=[], metavar="FILE")
        q.add_argument("--baselines", help="YAML {baseline: {task: value}} or CSV task,<baseline>...")
        q.add_argument("--override", nargs="+", action="append", metavar=("FILE", "KEY=VALUE"),
                       help="ids of an input: --override FILE pretrain_words=90M run_id=X rl_words=1M")
        q.add_argument("--pre-model", help="babylm: model id of the pretrained model")
        q.add_argument("--rl-models", nargs="+", help="babylm: model ids of the final RL models")
        q.add_argument("--section", type=section_type(AnalysisConfig), default=AnalysisConfig())
        q.set_defaults(func=cli_one, kind=kind)


def cli_one(args) -> None:
    from storyrl.analysis.load import parse_overrides
    inputs = layout.Inputs(
        steps=[Path(p) for p in args.steps], rollouts=[Path(p) for p in args.rollouts],
        summaries=[Path(p) for p in args.summaries], story_eval=[Path(p) for p in args.story_eval],
        eval=[Path(p) for p in args.eval], baselines=Path(args.baselines) if args.baselines else None)
    opts = {}
    if args.kind + args.name in ("tablebabylm", "figurebabylm"):
        opts = {"pre_model": args.pre_model, "rl_models": args.rl_models}
    for p in make(args.kind, args.name, inputs, args.output, args.section,
                  parse_overrides(args.override), **opts):
        print(p)


def cli_all(args) -> None:
    cfg = args.section
    if args.config:
        if cfg is not None:
            raise AnalysisError("give --section or --config, not both")
        from storyrl.config import read_yaml
        raw = read_yaml(args.config)
        try:
            cfg = AnalysisConfig.model_validate(raw.get("analysis") or {})
        except ValueError as err:
            raise AnalysisError(f"{args.config}: analysis: {err}") from None
    result = build_all(args.results, args.output, cfg or AnalysisConfig(), args.strict)
    for p in result["written"]:
        print(p)
    for target, reason in result["skipped"].items():
        print(f"skipped {target}: {reason}")
