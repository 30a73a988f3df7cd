# The corpus rules' plan (corpus.smk): where each corpus slice is read from.


def corpus_source(wildcards):
    """The folder a slice reads: the generated demo corpus, or the user's path.

    A user path that does not exist (yet) is not declared as an input, so a dry run of a config
    with a placeholder path still shows the whole DAG; the subset job then fails naming the path.
    """
    cfg = CFG.corpora[wildcards.corpus]
    if cfg.format == "demo":
        return f"{corpus_dir(wildcards.corpus)}/raw"
    return cfg.path if os.path.exists(cfg.path) else []
