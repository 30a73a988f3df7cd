# Tables and figures (storyrl.analysis.registry): each one its own target, built only from the
# Parquet/JSON results, so `snakemake results/figures/<name>.pdf` rebuilds that one alone.
# The targets, their inputs and their paths all come from the registry and the layout.
include: "plan/analysis.smk"


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
        "python -m storyrl.cli record-config --config-json {params.config:q} --output {output:q} > {log:q} 2>&1"


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
        "python -m storyrl.cli analysis table {wildcards.name} --output {output.csv:q} {params.args}"
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
        directory(f"{RESULTS}/share"),
    params:
        # The folder the share reads, as the zero-shot rules' data: a function only for the lint.
        results=lambda w: RESULTS,
        baselines=" ".join(f"--baselines {shlex.quote(f)}" for f in ANALYSIS_FILES.get("baselines", [])),
    conda:
        CPU_ENV
    log:
        log_path("share"),
    benchmark:
        bench_path("share")
    shell:
        "python -m storyrl.cli share --results {params.results:q} --out {output:q} --config {input.config:q}"
        " {params.baselines} > {log:q} 2>&1"
