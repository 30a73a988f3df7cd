"""The one list of tables and figures: each is registered here once, with the inputs it reads
and the function that builds it. The workflow's rules (`workflow/rules/analysis.smk`), the CLI
(`storyrl analysis table|figure NAME`) and `storyrl analysis all` all read `REGISTRY`, so adding a
figure is one `register(...)` line below plus its function.

A builder is called as `build(*inputs, output, cfg, **options)`: one argument per name in
`inputs` (the loaded `targets.Data` attribute), in that order. It is named as "module:function"
and imported only when the target is built, so that reading the registry (every Snakefile parse)
loads no pandas or matplotlib.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal

from storyrl.core import layout

KINDS = ("table", "figure")
INPUTS = tuple(f.name for f in fields(layout.Inputs))
"""What a target may read: the fields of `layout.Inputs` (steps, rollouts, ..., baselines)."""


@dataclass(frozen=True)
class Target:
    name: str
    kind: Literal["table", "figure"]
    inputs: tuple[str, ...]
    """Inputs it reads, in the order its builder takes them; a rule declares all their files."""
    build: str | Callable
    """"module:function" (imported when built) or the function itself."""
    doc: str
    needs: tuple[str, ...] | None = None
    """Inputs without which it cannot be built (`a|b`: either); None: the first input."""
    options: tuple[str, ...] = ()
    """Keyword options of its builder that the CLI passes on (e.g. `pre_model`)."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind '{self.kind}' is not one of {KINDS}")
        unknown = set(self.inputs) - set(INPUTS)
        if unknown:
            raise ValueError(f"{self.kind} {self.name}: unknown inputs {sorted(unknown)}")
        # A rule declares the files of `inputs` only: what is required must be among them.
        unread = {a for n in self.required for a in n.split("|")} - set(self.inputs)
        if unread:
            raise ValueError(f"{self.kind} {self.name}: needs {sorted(unread)}, not in its inputs")

    @property
    def required(self) -> tuple[str, ...]:
        return self.inputs[:1] if self.needs is None else self.needs

    def missing(self, inputs: layout.Inputs) -> list[str]:
        return [n for n in self.required if not any(getattr(inputs, a) for a in n.split("|"))]

    def builder(self) -> Callable:
        if callable(self.build):
            return self.build
        module, _, function = self.build.partition(":")
        return getattr(importlib.import_module(module), function)

    def path(self, output, fmt: str | None = None):
        """Where `storyrl analysis all` and the workflow write it, by the layout."""
        if self.kind == "table":
            return layout.table_path(output, self.name, fmt or layout.TABLE_FORMATS[0])
        return layout.figure_path(output, self.name, fmt or layout.FIGURE_FORMATS[0])

    def paths(self, output) -> list:
        formats = layout.TABLE_FORMATS if self.kind == "table" else layout.FIGURE_FORMATS
        return [self.path(output, fmt) for fmt in formats]


REGISTRY: dict[tuple[str, str], Target] = {}
"""(kind, name) -> target, in the order `analysis all` builds them."""


def register(target: Target) -> Target:
    key = (target.kind, target.name)
    if key in REGISTRY:
        raise ValueError(f"{target.kind} '{target.name}' is registered twice")
    REGISTRY[key] = target
    return target


def names(kind: str) -> list[str]:
    return [n for k, n in REGISTRY if k == kind]


def buildable(kind: str, have) -> list[str]:
    """Targets of `kind` whose required inputs are among `have` (names of inputs with files)."""
    have = set(have)
    return [
        t.name
        for t in REGISTRY.values()
        if t.kind == kind and all(set(n.split("|")) & have for n in t.required)
    ]


# --------------------------------------------------------------------------- the targets
_T, _RL, _EV = (
    "storyrl.analysis.table_targets",
    "storyrl.analysis.figures_rl",
    "storyrl.analysis.figures_eval",
)
_PRE = "storyrl.analysis.figures_pretrain"

register(
    Target(
        "before_after",
        "table",
        ("steps", "rollouts"),
        f"{_T}:before_after",
        "teacher score (0-9) of the first/last steps per pretraining size, 95% bootstrap",
    )
)
register(
    Target(
        "equivalence",
        "table",
        ("story_eval", "steps", "rollouts"),
        f"{_T}:equivalence",
        "pretraining words that reach each run's after-RL score ('N RL words ≈ M', for the "
        "RL words the run had), by the paper's method (nearest checkpoint) and ours "
        "(monotone curve, bootstrap CI)",
        needs=("steps",),
    )
)
register(
    Target(
        "babylm",
        "table",
        ("eval", "baselines"),
        f"{_T}:babylm",
        "BabyLM full sets: baselines, pre, RL and the RL delta per task",
        options=("pre_model", "rl_models"),
    )
)
register(
    Target(
        "ledger",
        "table",
        ("summaries", "steps"),
        f"{_T}:ledger",
        "budget ledger of every RL run",
        needs=("summaries|steps",),
    )
)
register(
    Target(
        "stories",
        "table",
        ("rollouts",),
        f"{_T}:stories",
        "stories to read: per RL run, a seeded draw from the first and the last tenth "
        "of training and the highest-scored ones, with the teacher's reply and scores",
    )
)

register(
    Target(
        "before_after",
        "figure",
        ("steps", "rollouts"),
        f"{_RL}:before_after",
        "teacher score and story length before/after RL against pretraining words",
    )
)
register(
    Target(
        "rl_dynamics",
        "figure",
        ("steps",),
        f"{_RL}:rl_dynamics",
        "teacher score, story length and KL against interaction words; score against length",
    )
)
register(
    Target(
        "score_shares",
        "figure",
        ("rollouts",),
        f"{_RL}:score_shares",
        "stacked shares of scores 0-3 per criterion over interaction words",
    )
)
register(
    Target(
        "entropy",
        "figure",
        ("steps",),
        f"{_RL}:entropy",
        "story length and teacher score against entropy per word",
    )
)
register(
    Target(
        "equivalence",
        "figure",
        ("story_eval", "steps", "rollouts"),
        f"{_RL}:equivalence",
        "each run's after-RL score at its own starting checkpoint, against the checkpoints: "
        "the paper's nearest checkpoint and our monotone curve",
        needs=("steps",),
    )
)
register(
    Target(
        "babylm",
        "figure",
        ("eval", "baselines"),
        f"{_EV}:babylm",
        "BabyLM bars with the RL delta",
        options=("pre_model", "rl_models"),
    )
)
register(
    Target(
        "fast_eval_pretrain",
        "figure",
        ("eval",),
        f"{_EV}:fast_eval_pretrain",
        "fast-set accuracy over pretraining checkpoints",
    )
)
register(
    Target(
        "fast_eval_rl",
        "figure",
        ("eval",),
        f"{_EV}:fast_eval_rl",
        "fast-set scores over RL checkpoints, every panel on its metric's whole range",
    )
)
register(
    Target(
        "pretrain_loss",
        "figure",
        ("pretrain_logs",),
        f"{_PRE}:pretrain_loss",
        "pretraining loss against words seen, milestones marked, every run",
    )
)

_AG = "storyrl.analysis.agreement"
register(
    Target(
        "teacher_agreement",
        "table",
        ("agreement",),
        f"{_AG}:agreement_table",
        "each further teacher against the run's own on the same sampled stories: Spearman's "
        "rho, quadratic-weighted kappa, mean difference (95% bootstrap) per criterion and total",
    )
)
register(
    Target(
        "agreement_headline",
        "table",
        ("agreement", "steps"),
        f"{_AG}:headline_table",
        "before/after (first and last tenth of training) and both equivalence readings on the "
        "sampled stories, under the original teacher and under each further one",
        needs=("agreement",),
    )
)
register(
    Target(
        "teacher_agreement",
        "figure",
        ("agreement",),
        f"{_AG}:agreement_figure",
        "confusion matrices of each further teacher against the run's own, per criterion",
    )
)
