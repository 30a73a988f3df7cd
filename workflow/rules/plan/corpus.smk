# The corpus rules' plan (corpus.smk): where each corpus slice is read from.


def corpus_source(wildcards):
    """The folder a slice reads: the generated demo corpus, or the user's path.

    A user path that does not exist is not declared as an input: planning refuses it (the
    Snakefile's data check) unless the slice's subset is built, and then it is not read again.
    """
    cfg = CFG.corpora[wildcards.corpus]
    if cfg.format == "demo":
        return f"{corpus_dir(wildcards.corpus)}/raw"
    return cfg.path if os.path.exists(cfg.path) else []
