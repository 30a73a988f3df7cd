# The analysis rules' plan (analysis.smk): the inputs of every table and figure, and their command-
# line flags.

import json
import shlex

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
    # Redacted here, not only in the record: snakemake prints this command line.
    from storyrl.redact import redact_data

    return json.dumps(
        redact_data(CFG.model_dump(mode="json", exclude={"tracking"})),
        sort_keys=True,
        separators=(",", ":"),
    )
