# Tables and figures (storyrl.analysis.registry): each one its own target, built only from the
# Parquet/JSON results, so `snakemake results/figures/<name>.pdf` rebuilds that one alone.
# The targets, their inputs and their paths all come from the registry and the layout.
import json
import shlex

from storyrl.analysis import layout
from storyrl.analysis.registry import INPUTS, KINDS, REGISTRY, buildable as _buildable

# The files of each input (a field of layout.Inputs) that this config's plan produces.
ANALYSIS_FILES = {
    "steps": [str(layout.steps_path(RESULTS, r)) for r in PLAN],
    "rollouts": [str(layout.rollouts_path(RESULTS, r)) for r in PLAN],
    "summaries": [str(layout.summary_path(RESULTS, r)) for r in PLAN],
    "story_eval": [str(layout.story_eval_path(RESULTS, m)) for m in MODELS],
    "eval": [str(layout.eval_path(RESULTS, m)) for m in MODELS] + all_official_outputs(),
    "pretrain_logs": [str(layout.pretrain_log_path(RESULTS, r)) for r in CFG.pretrain.runs],
    "agreement": all_agreement_outputs(),
}
if CFG.analysis.baselines:
    ANALYSIS_FILES["baselines"] = [repo_path(CFG.analysis.baselines)]


def buildable(kind):
    """Targets whose required inputs this config produces (no RL runs: no RL figures)."""
    return _buildable(kind, [k for k, v in ANALYSIS_FILES.items() if v])


def target_inputs(kind):
    def inputs(wildcards):
        wanted = REGISTRY[kind, wildcards.name].inputs
        return {k: v for k, v in ANALYSIS_FILES.items() if k in wanted}

    return inputs


def target_args(wildcards, input):
    """The input flags, each path shell-quoted (a path may hold a space)."""
    import shlex

    flags = []
    for key in INPUTS:
        if key in input.keys() and key != "baselines":
            flags.append(f"--{key.replace('_', '-')} " + " ".join(map(shlex.quote, input[key])))
    if "baselines" in input.keys():
        flags.append(f"--baselines {shlex.quote(str(input.baselines))}")
    return " ".join(flags)


def all_analysis_outputs():
    return [
        p for kind in KINDS for n in buildable(kind) for p in REGISTRY[kind, n].paths(RESULTS)
    ] + [RUN_CONFIG]


# The run's validated config beside its results (`tracking`, which changes no result, left out):
# every table and figure takes its settings from this file, so `storyrl analysis all --results
# results` rebuilds them as they are, and `share` copies it into the dataset.
RUN_CONFIG = str(layout.config_path(RESULTS))


def run_config_json():
    return json.dumps(
        CFG.model_dump(mode="json", exclude={"tracking"}), sort_keys=True, separators=(",", ":")
    )


rule run_config:
    output:
        RUN_CONFIG,
    params:
        config=lambda w: run_config_json(),  # a function: the JSON holds `{model}`-like text
    conda:
        CPU_ENV
    log:
        log_path("run_config"),
    benchmark:
        bench_path("run_config")
    shell:
        "{STORYRL} record-config --config-json {params.config:q} --output {output:q} > {log:q} 2>&1"


rule table:
    input:
        unpack(target_inputs("table")),
        config=RUN_CONFIG,
    output:
        csv=report(
            str(layout.table_path(RESULTS, "{name}", ".csv")),
            caption="../report/target.rst",
            category="Tables",
        ),
        md=str(layout.table_path(RESULTS, "{name}", ".md")),
        tex=str(layout.table_path(RESULTS, "{name}", ".tex")),
    wildcard_constraints:
        name=one_of(buildable("table")),
    params:
        args=target_args,
        doc=lambda w: REGISTRY["table", w.name].doc,
    conda:
        CPU_ENV
    log:
        log_path("table", "{name}"),
    benchmark:
        bench_path("table", "{name}")
    shell:
        "{STORYRL} analysis table {wildcards.name} --output {output.csv:q} {params.args}"
        " --config {input.config:q} > {log:q} 2>&1"


rule figure:
    input:
        unpack(target_inputs("figure")),
        config=RUN_CONFIG,
    output:
        pdf=str(layout.figure_path(RESULTS, "{name}", ".pdf")),
        png=report(
            str(layout.figure_path(RESULTS, "{name}", ".png")),
            caption="../report/target.rst",
            category="Figures",
        ),
    wildcard_constraints:
        name=one_of(buildable("figure")),
    params:
        args=target_args,
        doc=lambda w: REGISTRY["figure", w.name].doc,
    conda:
        CPU_ENV
    log:
        log_path("figure", "{name}"),
    benchmark:
        bench_path("figure", "{name}")
    shell:
        "{STORYRL} analysis figure {wildcards.name} --output {output.pdf:q} {params.args}"
        " --config {input.config:q} > {log:q} 2>&1"


# The results as a Hugging Face dataset (storyrl.analysis.share): `snakemake share` writes
# results/share/, the Parquet files and a dataset card; `hf upload` publishes it. Not in `all`:
# sharing is a choice, and a second tree of the results is not needed to read them.
rule share:
    input:
        [f for files in ANALYSIS_FILES.values() for f in files],
        config=RUN_CONFIG,
    output:
        directory(f"{RESULTS}/share"),
    params:
        baselines=" ".join(f"--baselines {shlex.quote(f)}" for f in ANALYSIS_FILES.get("baselines", [])),
    conda:
        CPU_ENV
    log:
        log_path("share"),
    benchmark:
        bench_path("share")
    shell:
        "{STORYRL} share --results {RESULTS} --out {output:q} --config {input.config:q}"
        " {params.baselines} > {log:q} 2>&1"
