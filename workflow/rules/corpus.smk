# Corpus slices -> seeded subset -> byte-level BPE -> one flat token stream per slice.
rule demo_corpus:
    output:
        directory(P.corpus_dir("{corpus}", "raw")),
    params:
        words=lambda w: CFG.corpora[w.corpus].demo_words,
        seed=lambda w: CFG.corpora[w.corpus].demo_seed,
    conda:
        CPU_ENV
    log:
        P.log("demo_corpus", "{corpus}"),
    benchmark:
        P.bench("demo_corpus", "{corpus}")
    shell:
        "python -m storyrl.cli demo-corpus --output {output:q} --words {params.words} --seed {params.seed} > {log:q} 2>&1"


rule subset:
    input:
        lambda w: P.corpus_source(w.corpus),
    output:
        subset=P.corpus_dir("{corpus}", "subset.parquet"),
        stats=P.corpus_dir("{corpus}", "stats.json"),
    params:
        section=lambda w: args.section(CFG.corpora[w.corpus]),
        path=lambda w: P.corpus_source(w.corpus) or CFG.corpora[w.corpus].path,
    conda:
        CPU_ENV
    log:
        P.log("subset", "{corpus}"),
    benchmark:
        P.bench("subset", "{corpus}")
    shell:
        "python -m storyrl.cli subset --section {params.section:q} --path {params.path:q}"
        " --output {output.subset:q} --stats {output.stats:q} > {log:q} 2>&1"


rule tokenizer:
    input:
        rules.subset.output.subset,
    output:
        directory(P.corpus_dir("{corpus}", "tokenizer")),
    params:
        section=args.section(CFG.tokenizer),
    conda:
        CPU_ENV
    log:
        P.log("tokenizer", "{corpus}"),
    benchmark:
        P.bench("tokenizer", "{corpus}")
    shell:
        "python -m storyrl.cli tokenizer --section {params.section:q} --subset {input:q} --output {output:q} > {log:q} 2>&1"


rule tokens:
    input:
        subset=rules.subset.output.subset,
        tokenizer=rules.tokenizer.output,
    output:
        bin=P.corpus_dir("{corpus}", "tokens.bin"),
        meta=P.corpus_dir("{corpus}", "tokens.json"),
    params:
        section=lambda w: args.section(CFG.corpora[w.corpus]),
    conda:
        CPU_ENV
    log:
        P.log("tokens", "{corpus}"),
    benchmark:
        P.bench("tokens", "{corpus}")
    shell:
        "python -m storyrl.cli tokens --subset {input.subset:q} --tokenizer {input.tokenizer:q}"
        " --output {output.bin:q} --meta {output.meta:q} --section {params.section:q} > {log:q} 2>&1"
