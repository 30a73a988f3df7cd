"""The conda environments in envs/ parse and pin what pyproject.toml pins.

No conda channel is reachable here, so the environments are not built; instead their pins are
compared with the project's own, which the test suite runs against.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]

# The one documented disagreement (see the header of envs/gpu.yaml): vllm needs numpy<2.4.
EXCEPTIONS = {("gpu.yaml", "numpy"): "2.3.5"}
# Needed to run the workflow, not inside a rule's environment.
NOT_IN_RULE_ENVS = {"snakemake"}


def _pins(requirements: list[str]) -> dict[str, Version]:
    pins = {}
    for line in requirements:
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line!r}"
        pins[canonicalize_name(req.name)] = Version(specs[0].version)
    return pins


def _project():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _env(name: str) -> tuple[dict, dict[str, Version], list[str]]:
    path = REPO / "envs" / name
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and env.get("name") and env.get("channels"), path
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, f"{path}: expected one pip: section"
    pip = [line for line in pip_lists[0] if not line.startswith("-")]  # skip pip options
    return env, _pins(pip), conda


@pytest.mark.parametrize("name, extras", [("cpu.yaml", []), ("gpu.yaml", ["gpu"])])
def test_env_pins_agree_with_pyproject(name, extras):
    project = _project()
    expected = _pins(project["dependencies"])
    for extra in extras:
        expected.update(_pins(project["optional-dependencies"][extra]))
    for skip in NOT_IN_RULE_ENVS:
        expected.pop(skip)
    env, pins, conda = _env(name)

    assert sorted(pins) == sorted(expected), f"envs/{name} and pyproject list different packages"
    for pkg, version in pins.items():
        want = EXCEPTIONS.get((name, pkg))
        if want is not None:
            assert str(version) == want, f"envs/{name}: {pkg} {version}, documented {want}"
            continue
        # A local build label (torch 2.13.0+cpu) is the same release as pyproject's pin.
        assert version.public == expected[pkg].public, (
            f"envs/{name} pins {pkg}=={version}, pyproject.toml pins {expected[pkg]}")

    python = [d for d in conda if d.split("=")[0] == "python"]
    assert python, f"envs/{name} does not pin python"
    py_version = python[0].split("=", 1)[1].lstrip("=")
    assert SpecifierSet(project["requires-python"]).contains(py_version + ".0"), (
        f"envs/{name}: python {py_version} outside requires-python {project['requires-python']}")


def test_exceptions_are_real():
    # An exception that agrees anyway (or names a package pyproject does not pin) is stale.
    project = _pins(_project()["dependencies"])
    for (name, pkg), version in EXCEPTIONS.items():
        assert pkg in project and str(project[pkg]) != version, (name, pkg)
        assert str(_env(name)[1][pkg]) == version


def test_cpu_env_installs_the_cpu_build_of_torch():
    text = (REPO / "envs" / "cpu.yaml").read_text()
    assert "download.pytorch.org/whl/cpu" in text
    assert _env("cpu.yaml")[1]["torch"].local == "cpu"
