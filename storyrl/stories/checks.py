"""The teachers' plan-time check: every teacher that loads weights names a local model folder,
and every rubric template loads. The workflow runs it when it plans (and `storyrl check-config`),
so a missing file stops the plan rather than a GPU job."""

from pathlib import Path

from storyrl.config import LOCAL_WEIGHT_BACKENDS, Config, ConfigError
from storyrl.config.top import teacher_sections
from storyrl.stories.rubric import load_rubric, resolve_template


def _template_lines(cfg: Config, base_dir=None) -> list[str]:
    lines = []
    for key, teacher in teacher_sections(cfg).items():
        template = teacher["template"]
        sha = teacher.get("template_sha256")
        if why := _template_problem(template, base_dir, sha):
            # The hash pins one file: our rubric (or any other) needs it unset as well.
            ours = "config/prompts/teacher_rubric.txt" + (
                f" with `{key}.template_sha256: null`" if sha else ""
            )
            lines.append(
                f"  {key}.template: '{template}': {why}. Set it to a rubric template "
                "(the paper's: the authors' prompts/teacher_prompt.md, see the top of "
                f"config/paper.yaml; ours: {ours})"
            )
    return list(dict.fromkeys(lines))


def check_teacher_weights(cfg: Config, source: str = "config", base_dir=None) -> None:
    """Every teacher that loads weights in a job (the base one, and each RL run's after its
    overrides) names a local model folder with a config.json, and every teacher's rubric
    template is a readable template (config/paper.yaml leaves both to the user).

    Jobs run with the Hugging Face hub offline (workflow/rules/common.smk): compute nodes often
    have no internet, and 100 jobs would each fetch 16 GB into one shared cache. A hub id or a
    wrong path would only fail inside a GPU job; the workflow calls this when it plans.
    `base_dir`: where a relative template path not found in the working directory is looked
    up (the workflow's own folder, as its rules resolve it).
    """
    lines = []
    for key, teacher in teacher_sections(cfg).items():
        if teacher["backend"] not in LOCAL_WEIGHT_BACKENDS:
            continue  # (a heuristic judge of `agreement` has no model at all)
        model = Path(teacher["model"])
        if not (model / "config.json").is_file():
            why = "a folder without config.json" if model.is_dir() else "no such folder"
            lines.append(
                f"  {key}.model: '{model}': {why}. The '{teacher['backend']}' teacher loads "
                "its weights from a local folder (jobs run with the hub offline): download "
                "them once, e.g. `hf download meta-llama/Llama-3.1-8B-Instruct --local-dir "
                "DIR`, and set the key to DIR"
            )
    lines += _template_lines(cfg, base_dir)
    if lines:
        raise ConfigError(f"invalid config in {source}:\n" + "\n".join(lines))


def _template_problem(template: str, base_dir=None, sha256: str | None = None) -> str | None:
    """Why the rubric template cannot be used, or None."""
    if base_dir is not None and not Path(template).is_absolute() and not Path(template).exists():
        template = str(Path(base_dir) / template)
    try:
        resolve_template(template)
    except ConfigError:
        return "no such file"
    try:
        load_rubric(template, expect_sha256=sha256)
    except ConfigError as err:
        return str(err).removeprefix("teacher.template: ")
    return None
