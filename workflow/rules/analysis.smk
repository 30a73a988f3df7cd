# Tables and figures (storyrl.analysis.registry): each one its own target, built only from the
# Parquet/JSON results, so `snakemake results/figures/<name>.pdf` rebuilds that one alone.
# The targets, their inputs and their paths all come from the registry and the layout.
from storyrl.analysis.registry import REGISTRY

# The run's validated config beside its results (`tracking`, which changes no result, left out):
# every table and figure takes its settings from this file, so `storyrl analysis all --results
# results` rebuilds them as they are, and `share` copies it into the dataset.
RUN_CONFIG = P.path("config_path")
ANALYSIS_FILES = targets.analysis_files(P)


rule run_config:
    output:
        RUN_CONFIG,
    params:
        config=lambda w: args.run_config_json(P),  # a function: the JSON holds `{model}`-like text
    conda:
        CPU_ENV
    log:
        P.log("run_config"),
    benchmark:
        P.bench("run_config")
    shell:
        "python -m storyrl.cli record-config --config-json {params.config:q} --output {output:q} > {log:q} 2>&1"


rule table:
    input:
        unpack(lambda w: targets.analysis_inputs(P, "table", w.name)),
        config=RUN_CONFIG,
    output:
        csv=report(
            P.path("table_path", "{name}", ".csv"),
            caption="../report/target.rst",
            category="Tables",
        ),
        md=P.path("table_path", "{name}", ".md"),
        tex=P.path("table_path", "{name}", ".tex"),
    wildcard_constraints:
        name=one_of(targets.buildable_targets(P, "table")),
    params:
        args=lambda w, input: args.analysis_args(input),
        doc=lambda w: REGISTRY["table", w.name].doc,
    conda:
        CPU_ENV
    log:
        P.log("table", "{name}"),
    benchmark:
        P.bench("table", "{name}")
    shell:
        "python -m storyrl.cli analysis table {wildcards.name} --output {output.csv:q} {params.args}"
        " --config {input.config:q} > {log:q} 2>&1"


rule figure:
    input:
        unpack(lambda w: targets.analysis_inputs(P, "figure", w.name)),
        config=RUN_CONFIG,
    output:
        pdf=P.path("figure_path", "{name}", ".pdf"),
        png=report(
            P.path("figure_path", "{name}", ".png"),
            caption="../report/target.rst",
            category="Figures",
        ),
    wildcard_constraints:
        name=one_of(targets.buildable_targets(P, "figure")),
    params:
        args=lambda w, input: args.analysis_args(input),
        doc=lambda w: REGISTRY["figure", w.name].doc,
    conda:
        CPU_ENV
    log:
        P.log("figure", "{name}"),
    benchmark:
        P.bench("figure", "{name}")
    shell:
        "python -m storyrl.cli analysis figure {wildcards.name} --output {output.pdf:q} {params.args}"
        " --config {input.config:q} > {log:q} 2>&1"


# The results as a Hugging Face dataset (storyrl.analysis.share): `snakemake share` writes
# results/share/, the Parquet files and a dataset card; `hf upload` publishes it. Not in `all`:
# sharing is a choice, and a second tree of the results is not needed to read them.
rule share:
    input:
        [f for files in ANALYSIS_FILES.values() for f in files],
        config=RUN_CONFIG,
    output:
        directory(f"{P.results}/share"),
    params:
        # The folder the share reads, as the zero-shot rules' data: a function only for the lint.
        results=lambda w: P.results,
        baselines=" ".join(f"--baselines {shlex.quote(f)}" for f in ANALYSIS_FILES.get("baselines", [])),
    conda:
        CPU_ENV
    log:
        P.log("share"),
    benchmark:
        P.bench("share")
    shell:
        "python -m storyrl.cli share --results {params.results:q} --out {output:q} --config {input.config:q}"
        " {params.baselines} > {log:q} 2>&1"
