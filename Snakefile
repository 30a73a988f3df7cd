# storyrl: the paper "Once Upon a Time" (arXiv 2509.15714) as one workflow.
#   snakemake --cores 2                                   the default (demo) config, CPU, minutes
#   snakemake --configfile config/paper.yaml --profile profiles/slurm   the paper on a cluster
import json
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from storyrl.config import ConfigError, validate
from storyrl.config.data_paths import check_data_paths
from storyrl.stories.checks import check_teacher_weights

min_version("9.0")

# --configfile FILE(s) replace the default config rather than merging into it, so that e.g.
# config/paper.yaml does not inherit the demo corpus; --config key=value still overrides.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Name where the values came from: the config files, and --config key=value if given.
_sources = [str(f) for f in workflow.configfiles]
if workflow.config_settings.config:
    _sources.append("--config " + " ".join(workflow.config_settings.config))
try:
    _source = ", ".join(_sources) or "config"
    CFG = validate(config, source=_source)
    check_teacher_weights(CFG, source=_source, base_dir=workflow.basedir)
except ConfigError as err:
    raise WorkflowError(str(err)) from None


try:
    include: "workflow/rules/common.smk"
except ConfigError as err:
    raise WorkflowError(str(err)) from None


# The corpus and evaluation data a job would read, checked now rather than hours later in a
# queue; a corpus whose subset is built is not read again, so its source may have moved.
try:
    check_data_paths(
        CFG,
        source=_source,
        skip_corpora=[c for c in CFG.corpora if os.path.exists(f"{P.corpus_dir(c)}/subset.parquet")],
    )
except ConfigError as err:
    raise WorkflowError(str(err)) from None

include: "workflow/rules/corpus.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/rl.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/official.smk"
include: "workflow/rules/submission.smk"
include: "workflow/rules/agreement.smk"
include: "workflow/rules/analysis.smk"


report: "workflow/report/workflow.rst"


# Seconds of work on files already on the shared filesystem: run them where snakemake runs
# instead of queueing a SLURM job for each.
localrules:
    all,
    table,
    figure,
    official_collect,
    submission,
    share,
    run_config,


rule all:
    default_target: True
    input:
        targets.default_target(P),
