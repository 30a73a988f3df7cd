# Paths and helpers shared by the stage files. Every path carries every varying factor.
from storyrl.units import words_label

RESULTS = "results"


def section(obj):
    """A config section as compact JSON: a rule's params, so it reruns when (only) it changes."""
    return json.dumps(obj.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def corpus_dir(corpus):
    return f"{RESULTS}/corpus/{corpus}"


def ckpt_dir(run_id, words):
    return f"{RESULTS}/pretrain/{run_id}/ckpt-{words_label(words)}"


def log_path(rule_name, *parts):
    return f"{RESULTS}/logs/{rule_name}/{'/'.join(parts) or 'all'}.log"


def bench_path(rule_name, *parts):
    return f"{RESULTS}/benchmarks/{rule_name}/{'/'.join(parts) or 'all'}.tsv"
