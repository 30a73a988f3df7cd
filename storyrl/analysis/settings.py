"""Which analysis settings make the tables and figures.

A results folder carries the config of the run that made it (`config.yaml`: the workflow writes
it, `storyrl share` copies it). Its `analysis` section is what `storyrl analysis all|table|figure`
use; settings given on the command line (`--config`, `--section`) replace it only when given,
and the log says so and what differs. Where nothing is recorded the log names the values used.
"""

import json
import logging
from pathlib import Path

from storyrl.analysis import AnalysisError
from storyrl.config import AnalysisConfig
from storyrl.core import layout

log = logging.getLogger(__name__)


def from_file(path) -> AnalysisConfig:
    """The `analysis` section of a config YAML (a workflow config, or a recorded one)."""
    from storyrl.config import read_yaml

    raw = read_yaml(path)
    try:
        return AnalysisConfig.model_validate(raw.get("analysis") or {})
    except ValueError as err:
        raise AnalysisError(f"{path}: analysis: {err}") from None


def _values(cfg: AnalysisConfig) -> dict:
    return cfg.model_dump(mode="json")


def _differences(a: AnalysisConfig, b: AnalysisConfig) -> str:
    va, vb = _values(a), _values(b)
    return ", ".join(f"{k}: {va[k]} -> {vb[k]}" for k in va if va[k] != vb[k])


def recorded(roots) -> tuple[Path, AnalysisConfig] | None:
    """The analysis settings recorded in the results folders `roots`, with their file; an
    AnalysisError if the folders' records disagree."""
    found = {}
    for root in dict.fromkeys(Path(r) for r in roots):
        path = layout.config_path(root)
        if path.is_file():
            found[path] = from_file(path)
    if not found:
        return None
    first, cfg = next(iter(found.items()))
    for path, other in found.items():
        if other != cfg:
            raise AnalysisError(
                f"the inputs come from results folders with different analysis settings: "
                f"{first} and {path} ({_differences(cfg, other)}); give --config to choose"
            )
    return first, cfg


def resolve(roots, given: AnalysisConfig | None = None, source: str = "") -> AnalysisConfig:
    """The settings to use for results in the folders `roots`: `given` (from `source`) if any,
    else the recorded ones, else the defaults; each choice is logged."""
    record = recorded(roots)
    where = ", ".join(str(layout.config_path(r)) for r in dict.fromkeys(map(str, roots)))
    if given is not None:
        if record is None:
            log.info("analysis settings from %s (none recorded in %s)", source, where or "-")
        elif record[1] == given:
            log.info("analysis settings from %s (the same as recorded in %s)", source, record[0])
        else:
            log.warning(
                "analysis settings from %s, not those recorded in %s (%s)",
                source,
                record[0],
                _differences(record[1], given),
            )
        return given
    if record is not None:
        log.info("analysis settings from %s", record[0])
        return record[1]
    values = ", ".join(f"{k}={v}" for k, v in _values(AnalysisConfig()).items())
    log.warning(
        "no config recorded with the results (%s): using the defaults: %s",
        where or "no results folder",
        values,
    )
    return AnalysisConfig()


def given(args) -> tuple[AnalysisConfig | None, str]:
    """The settings asked for on the command line (`--section` or `--config`), with their
    source, or (None, "")."""
    section, config = getattr(args, "section", None), getattr(args, "config", None)
    if section is not None and config:
        raise AnalysisError("give --section or --config, not both")
    if config:
        return from_file(config), str(config)
    if section is not None:
        return section, "--section " + json.dumps(_values(section), sort_keys=True)
    return None, ""
