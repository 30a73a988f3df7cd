"""Building the targets of `registry`: `make` (one table or figure from explicit input paths),
`build_all` (every one of them from a results folder, see `layout`) with no training, teacher
or GPU, and their CLI.

Python:  make("figure", "rl_dynamics", Inputs(steps=[...]), "results/figures/rl_dynamics.pdf")
CLI:     storyrl analysis figure rl_dynamics --steps results/rl/*/steps.parquet \\
             --output results/figures/rl_dynamics.pdf
         storyrl analysis all --results results --output results
"""

import logging
from functools import cached_property
from pathlib import Path

from storyrl.analysis import AnalysisError, BadResults, settings
from storyrl.analysis.registry import INPUTS, KINDS, REGISTRY, names
from storyrl.config import AnalysisConfig
from storyrl.core import layout

log = logging.getLogger(__name__)


class Data:
    """The inputs, read once and only when a target asks for them."""

    def __init__(self, inputs: layout.Inputs, overrides: dict | None = None):
        self.inputs, self.overrides = inputs, overrides or {}

    @cached_property
    def steps(self):
        from storyrl.analysis.load import load_steps

        # None when absent, as rollouts: only a target that does not need them gets here then.
        return load_steps(self.inputs.steps, self.overrides) if self.inputs.steps else None

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
    def pretrain_logs(self):
        from storyrl.analysis.load import load_pretrain_logs

        return load_pretrain_logs(self.inputs.pretrain_logs, self.overrides)

    @cached_property
    def summaries(self):
        from storyrl.analysis.load import load_summaries

        return load_summaries(self.inputs.summaries, self.overrides)

    @cached_property
    def agreement(self):
        from storyrl.analysis.agreement import load_agreement

        return load_agreement(self.inputs.agreement, self.overrides)

    @cached_property
    def baselines(self):
        from storyrl.analysis.load import load_baselines

        return load_baselines(self.inputs.baselines) if self.inputs.baselines else None


def make(
    kind: str,
    name: str,
    inputs: layout.Inputs,
    output,
    cfg: AnalysisConfig | None = None,
    overrides: dict | None = None,
    data: Data | None = None,
    **options,
) -> list[Path]:
    """Build one table or figure from explicit input paths into `output` (suffix optional)."""
    if (kind, name) not in REGISTRY:
        raise AnalysisError(f"unknown {kind} '{name}' (known: {', '.join(names(kind))})")
    t = REGISTRY[kind, name]
    missing = t.missing(inputs)
    if missing:
        raise AnalysisError(f"{kind} {name}: no input files for {', '.join(missing)}")
    data = data or Data(inputs, overrides)
    # Data attributes are read lazily: only the inputs this target takes are loaded.
    args = [getattr(data, a) for a in t.inputs]
    return t.builder()(*args, output, cfg or AnalysisConfig(), **options)


def build_all(
    results,
    output,
    cfg: AnalysisConfig | None = None,
    strict: bool = False,
    allow_modified: bool = False,
) -> dict:
    """Every table and figure from the files under `results` into `output`/tables and
    `output`/figures, with `cfg` or else the settings recorded in `results` (settings). A
    target that cannot be built from what is there (inputs absent, ids unknown, an empty steps
    table: an AnalysisError) is skipped with a warning, unless `strict`.
    An input file that cannot be read or lacks a column (SchemaError) aborts the whole build,
    as does a results folder that does not exist or from which nothing can be built, and a
    shared folder whose files are not those its card records (unless `allow_modified`).
    Returns {"written": [paths], "skipped": {target: reason}}."""
    from storyrl.analysis.share_files import check_shared

    if not Path(results).is_dir():
        raise AnalysisError(f"results folder {results} does not exist")
    check_shared(results, allow_modified)
    inputs = layout.discover(results)
    if cfg is None:
        cfg = settings.resolve([results])
    data = Data(inputs)
    written, skipped = [], {}
    for (kind, name), t in REGISTRY.items():
        try:
            written += make(kind, name, inputs, t.path(output), cfg, data=data)
        except AnalysisError as err:
            if strict or isinstance(err, BadResults):
                raise
            skipped[f"{kind}/{name}"] = str(err)
            log.warning("skipped %s %s: %s", kind, name, err)
    if not written:
        reasons = "; ".join(f"{t}: {r}" for t, r in skipped.items())
        raise AnalysisError(f"nothing could be built from {results} ({reasons})")
    return {"written": written, "skipped": skipped}


# ------------------------------------------------------------------------------ CLI
def add_parser(sub) -> None:
    from storyrl.config.commands import section as section_type

    p = sub.add_parser("analysis", help="tables and figures from Parquet results")
    asub = p.add_subparsers(dest="analysis_command", required=True)

    a = asub.add_parser("all", help="rebuild every table and figure from a results folder")
    a.add_argument("--results", required=True, help="folder in the layout of storyrl.core.layout")
    a.add_argument("--output", required=True, help="writes tables/ and figures/ here")
    add_settings_options(a, section_type)
    a.add_argument("--strict", action="store_true", help="fail instead of skipping a target")
    a.add_argument(
        "--allow-modified",
        action="store_true",
        help="a shared folder whose files differ from the sha256 its card records: build from "
        "them anyway, with a warning per file (default: refuse)",
    )
    a.set_defaults(func=cli_all)

    for kind in KINDS:
        known = names(kind)
        q = asub.add_parser(kind, help=f"one {kind}: " + ", ".join(known))
        q.add_argument("name", choices=known)
        q.add_argument(
            "--output",
            required=True,
            help="e.g. results/tables/x.csv (.md, .tex too) or results/figures/x.pdf (.png too)",
        )
        for field in INPUTS:
            if field == "baselines":
                q.add_argument(
                    "--baselines", help="YAML {baseline: {task: value}} or CSV task,<baseline>..."
                )
            else:
                q.add_argument(
                    f"--{field.replace('_', '-')}", nargs="+", default=[], metavar="FILE"
                )
        q.add_argument(
            "--override",
            nargs="+",
            action="append",
            metavar=("FILE", "KEY=VALUE"),
            help="ids of an input: --override FILE pretrain_words=90M run_id=X rl_words=1M",
        )

        def taking(option, kind=kind, known=known):
            return ", ".join(n for n in known if option in REGISTRY[kind, n].options)

        q.add_argument(
            "--pre-model", help=f"{taking('pre_model')}: model id of the pretrained model"
        )
        q.add_argument(
            "--rl-models",
            nargs="+",
            help=f"{taking('rl_models')}: model ids of the final RL models",
        )
        add_settings_options(q, section_type)
        q.set_defaults(func=cli_one, kind=kind)


def add_settings_options(parser, section_type) -> None:
    parser.add_argument(
        "--section",
        type=section_type(AnalysisConfig),
        default=None,
        help="analysis settings as JSON, instead of those recorded with the results",
    )
    parser.add_argument(
        "--config",
        help="or: a config YAML whose `analysis` section to use instead of the one recorded "
        "with the results (their folder's config.yaml)",
    )


def cli_one(args) -> None:
    from storyrl.analysis.load import parse_overrides

    inputs = layout.Inputs(
        **{f: [Path(p) for p in getattr(args, f)] for f in INPUTS if f != "baselines"},
        baselines=Path(args.baselines) if args.baselines else None,
    )
    opts = {o: getattr(args, o) for o in REGISTRY[args.kind, args.name].options}
    files = [p for f in INPUTS if f != "baselines" for p in getattr(inputs, f)]
    roots = [r for r in map(layout.results_root, files) if r is not None]
    cfg = settings.resolve(roots, *settings.given(args))
    for p in make(
        args.kind,
        args.name,
        inputs,
        args.output,
        cfg,
        parse_overrides(args.override),
        **opts,
    ):
        print(p)


def cli_all(args) -> None:
    if not Path(args.results).is_dir():
        raise AnalysisError(f"results folder {args.results} does not exist")
    cfg = settings.resolve([args.results], *settings.given(args))
    result = build_all(args.results, args.output, cfg, args.strict, args.allow_modified)
    for p in result["written"]:
        print(p)
    for target, reason in result["skipped"].items():
        print(f"skipped {target}: {reason}")
