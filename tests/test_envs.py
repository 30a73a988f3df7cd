"""The conda environments in envs/ parse and pin what pyproject.toml pins, and the `gpu` extra
installs.

No conda channel is reachable here, so the environments are not built; instead their pins are
compared with the project's own, which the test suite runs against. The `gpu` extra (vLLM, CUDA
wheels of several GB) is not installed either: pip's resolver is run on it (`--dry-run`, reading
only the packages' metadata), which is where it failed before, and its answer must be
envs/gpu.yaml. That test needs the package index and skips, saying so, where it cannot reach it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]

# Needed to run the workflow, not inside a rule's environment.
NOT_IN_RULE_ENVS = {"snakemake"}
# The one range in pyproject (see its comment): vllm needs numpy<2.4, the CPU suite runs 2.4.6.
RANGES = {"numpy"}


def _reqs(requirements: list[str]) -> dict[str, SpecifierSet]:
    reqs = {}
    for line in requirements:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        specs = list(req.specifier)
        if name not in RANGES:
            assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line!r}"
        reqs[name] = req.specifier
    return reqs


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
    expected = _reqs(project["dependencies"])
    for extra in extras:
        expected.update(_reqs(project["optional-dependencies"][extra]))
    for skip in NOT_IN_RULE_ENVS:
        expected.pop(skip)
    env, pins, conda = _env(name)

    assert sorted(pins) == sorted(expected), f"envs/{name} and pyproject list different packages"
    for pkg, version in pins.items():
        # A local build label (torch 2.13.0+cpu) is the same release as pyproject's pin.
        assert expected[pkg].contains(version.public), (
            f"envs/{name} pins {pkg}=={version}, pyproject.toml asks {pkg}{expected[pkg]}")

    python = [d for d in conda if d.split("=")[0] == "python"]
    assert python, f"envs/{name} does not pin python"
    py_version = python[0].split("=", 1)[1].lstrip("=")
    assert SpecifierSet(project["requires-python"]).contains(py_version + ".0"), (
        f"envs/{name}: python {py_version} outside requires-python {project['requires-python']}")


def test_cpu_env_has_the_version_a_plain_install_picks():
    # pip takes the newest release a range allows: for `pip install -e '.[dev]'` (Makefile) that
    # must be the version the CPU suite runs against, i.e. envs/cpu.yaml's pin is the range's top.
    project = _reqs(_project()["dependencies"])
    for pkg in RANGES:
        tops = [s for s in project[pkg] if s.operator == "<="]
        assert len(tops) == 1, f"pyproject: {pkg}{project[pkg]} needs an inclusive top (<=)"
        assert _env("cpu.yaml")[1][pkg] == Version(tops[0].version), pkg


def test_cpu_env_installs_the_cpu_build_of_torch():
    text = (REPO / "envs" / "cpu.yaml").read_text()
    assert "download.pytorch.org/whl/cpu" in text
    assert _env("cpu.yaml")[1]["torch"].local == "cpu"


# --- the `gpu` extra resolves -------------------------------------------------------------------
PIP_PROBE_TIMEOUT_S = 20
RESOLVE_TIMEOUT_S = 600


def _pip(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def _index_unreachable() -> str | None:
    """Why the package index cannot be asked, or None when it answers (with vllm's releases)."""
    try:
        out = _pip("index", "versions", "vllm", "--timeout", "10", "--retries", "0",
                   timeout=PIP_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"`pip index versions vllm` did not answer within {PIP_PROBE_TIMEOUT_S} s"
    if out.returncode != 0 or "Available versions" not in out.stdout:
        return f"package index unreachable: {(out.stderr or out.stdout).strip()[-300:]}"
    return None


def test_gpu_extra_resolves_to_the_gpu_env_pins(tmp_path):
    # `pip install -e '.[gpu]'` is what the README, envs/gpu.yaml and the vLLM backend's error
    # tell users to run: pip's own resolver must find a solution, and it must be the versions
    # that envs/gpu.yaml pins (so the conda env and a plain pip install are the same thing).
    reason = _index_unreachable()
    if reason:
        pytest.skip(reason)
    report = tmp_path / "report.json"
    out = _pip("install", "--dry-run", "--ignore-installed", "--report", str(report),
               f"{REPO}[gpu]", timeout=RESOLVE_TIMEOUT_S)
    errors = [l for l in out.stderr.splitlines() if "depends on" in l or "ERROR" in l]
    assert out.returncode == 0, "pip cannot resolve '.[gpu]':\n" + "\n".join(errors[-40:])
    resolved = {canonicalize_name(i["metadata"]["name"]): Version(i["metadata"]["version"])
                for i in json.loads(report.read_text())["install"]}
    for pkg, version in _env("gpu.yaml")[1].items():
        assert resolved[pkg].public == version.public, (
            f"pip resolves {pkg}=={resolved[pkg]} for '.[gpu]', envs/gpu.yaml pins {version}")
