# Corpus slices -> seeded subset -> byte-level BPE -> one flat token stream per slice.


def corpus_source(wildcards):
    """The folder a slice reads: the generated demo corpus, or the user's path.

    A user path that does not exist is not declared as an input: planning refuses it (the
    Snakefile's data check) unless the slice's subset is built, and then it is not read again.
    """
    cfg = CFG.corpora[wildcards.corpus]
    if cfg.format == "demo":
        return f"{corpus_dir(wildcards.corpus)}/raw"
    return cfg.path if os.path.exists(cfg.path) else []


rule demo_corpus:
    output:
        directory(f"{RESULTS}/corpus/{{corpus}}/raw"),
    params:
        words=lambda w: CFG.corpora[w.corpus].demo_words,
        seed=lambda w: CFG.corpora[w.corpus].demo_seed,
    conda:
        CPU_ENV
    log:
        log_path("demo_corpus", "{corpus}"),
    benchmark:
        bench_path("demo_corpus", "{corpus}")
    shell:
        "{STORYRL} demo-corpus --output {output:q} --words {params.words} --seed {params.seed} > {log:q} 2>&1"


rule subset:
    input:
        corpus_source,
    output:
        subset=f"{RESULTS}/corpus/{{corpus}}/subset.parquet",
        stats=f"{RESULTS}/corpus/{{corpus}}/stats.json",
    params:
        section=lambda w: section(CFG.corpora[w.corpus]),
        path=lambda w: corpus_source(w) or CFG.corpora[w.corpus].path,
    conda:
        CPU_ENV
    log:
        log_path("subset", "{corpus}"),
    benchmark:
        bench_path("subset", "{corpus}")
    shell:
        "{STORYRL} subset --section {params.section:q} --path {params.path:q}"
        " --output {output.subset:q} --stats {output.stats:q} > {log:q} 2>&1"


rule tokenizer:
    input:
        rules.subset.output.subset,
    output:
        directory(f"{RESULTS}/corpus/{{corpus}}/tokenizer"),
    params:
        section=section(CFG.tokenizer),
    conda:
        CPU_ENV
    log:
        log_path("tokenizer", "{corpus}"),
    benchmark:
        bench_path("tokenizer", "{corpus}")
    shell:
        "{STORYRL} tokenizer --section {params.section:q} --subset {input:q} --output {output:q} > {log:q} 2>&1"


rule tokens:
    input:
        subset=rules.subset.output.subset,
        tokenizer=rules.tokenizer.output,
    output:
        bin=f"{RESULTS}/corpus/{{corpus}}/tokens.bin",
        meta=f"{RESULTS}/corpus/{{corpus}}/tokens.json",
    params:
        section=lambda w: section(CFG.corpora[w.corpus]),
    conda:
        CPU_ENV
    log:
        log_path("tokens", "{corpus}"),
    benchmark:
        bench_path("tokens", "{corpus}")
    shell:
        "{STORYRL} tokens --subset {input.subset:q} --tokenizer {input.tokenizer:q}"
        " --output {output.bin:q} --meta {output.meta:q} --section {params.section:q} > {log:q} 2>&1"
