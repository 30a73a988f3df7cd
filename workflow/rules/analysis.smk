# Tables and figures (storyrl.analysis.targets): each one its own target, built only from the
# Parquet/JSON results, so `snakemake results/figures/<name>.pdf` rebuilds that one alone.
from storyrl.analysis import layout
from storyrl.analysis.targets import TARGETS

ANALYSIS_FILES = {
    "steps": [f"{rl_dir(r)}/steps.parquet" for r in PLAN],
    "rollouts": [f"{rl_dir(r)}/rollouts.parquet" for r in PLAN],
    "summaries": [f"{rl_dir(r)}/summary.json" for r in PLAN],
    "story_eval": [f"{RESULTS}/story_eval/{m}.parquet" for m in MODELS],
    "eval": [f"{RESULTS}/eval/{m}.parquet" for m in MODELS] + all_official_outputs(),
}
if CFG.analysis.baselines:
    ANALYSIS_FILES["baselines"] = [repo_path(CFG.analysis.baselines)]


def buildable(kind):
    """Targets whose required inputs this config produces (no RL runs: no RL figures)."""
    have = {k for k, v in ANALYSIS_FILES.items() if v}
    return [
        n
        for (k, n), t in TARGETS.items()
        if k == kind and all(set(need.split("|")) & have for need in t.needs)
    ]


def target_inputs(kind):
    def inputs(wildcards):
        t = TARGETS[kind, wildcards.name]
        names = {a for n in t.needs + t.uses for a in n.split("|")}
        return {k: v for k, v in ANALYSIS_FILES.items() if k in names}

    return inputs


def target_args(wildcards, input):
    """The input flags, each path shell-quoted (a path may hold a space)."""
    import shlex

    flags = []
    for key in ("steps", "rollouts", "summaries", "story_eval", "eval"):
        if key in input.keys():
            flags.append(f"--{key.replace('_', '-')} " + " ".join(map(shlex.quote, input[key])))
    if "baselines" in input.keys():
        flags.append(f"--baselines {shlex.quote(str(input.baselines))}")
    return " ".join(flags)


def all_analysis_outputs():
    return [
        layout.table_path(RESULTS, n, fmt) for n in buildable("table") for fmt in layout.TABLE_FORMATS
    ] + [layout.figure_path(RESULTS, n, fmt) for n in buildable("figure") for fmt in layout.FIGURE_FORMATS]


rule table:
    input:
        unpack(target_inputs("table")),
    output:
        csv=report(
            f"{RESULTS}/tables/{{name}}.csv", caption="../report/target.rst", category="Tables"
        ),
        md=f"{RESULTS}/tables/{{name}}.md",
        tex=f"{RESULTS}/tables/{{name}}.tex",
    wildcard_constraints:
        name=one_of(buildable("table")),
    params:
        args=target_args,
        section=section(CFG.analysis),
        doc=lambda w: TARGETS["table", w.name].doc,
    conda:
        CPU_ENV
    log:
        log_path("table", "{name}"),
    benchmark:
        bench_path("table", "{name}")
    shell:
        "{STORYRL} analysis table {wildcards.name} --output {output.csv:q} {params.args}"
        " --section {params.section:q} > {log:q} 2>&1"


rule figure:
    input:
        unpack(target_inputs("figure")),
    output:
        pdf=f"{RESULTS}/figures/{{name}}.pdf",
        png=report(
            f"{RESULTS}/figures/{{name}}.png", caption="../report/target.rst", category="Figures"
        ),
    wildcard_constraints:
        name=one_of(buildable("figure")),
    params:
        args=target_args,
        section=section(CFG.analysis),
        doc=lambda w: TARGETS["figure", w.name].doc,
    conda:
        CPU_ENV
    log:
        log_path("figure", "{name}"),
    benchmark:
        bench_path("figure", "{name}")
    shell:
        "{STORYRL} analysis figure {wildcards.name} --output {output.pdf:q} {params.args}"
        " --section {params.section:q} > {log:q} 2>&1"
