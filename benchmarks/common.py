"""What the benchmark scripts share: paths, timing, the environment, JSON files, and the GPU
check's report (a JSON rewritten after every phase, each phase capped in time).

Imports only the standard library at module level: a script that needs torch imports it."""

from __future__ import annotations

import json
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEASURED = REPO / "benchmarks" / "measured"


def setup_paths() -> None:
    """Make `import storyrl` (this checkout) and the sibling benchmark modules importable."""
    for p in (REPO, REPO / "benchmarks"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def write_json(path: Path | str, data) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def timed(fn, repeats: int = 1) -> float:
    """Median wall seconds of `fn()` over `repeats` calls."""
    import statistics

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def newest_check(folder: Path = MEASURED) -> Path | None:
    """The GPU check's newest measured JSON: the highest `_<n>` suffix of gpu_check_*.json."""

    def key(p: Path):
        m = re.search(r"_(\d+)$", p.stem)
        return (int(m.group(1)) if m else -1, p.stat().st_mtime)

    found = sorted(folder.glob("gpu_check_*.json"), key=key)
    return found[-1] if found else None


def environment() -> dict:
    """Versions and the device: what a number was measured with."""
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("transformers", "huggingface_hub", "tokenizers", "accelerate", "pydantic"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    try:
        import transformers

        env["transformers_imported"] = transformers.__version__  # the copy on sys.path first
    except ImportError as err:
        env["transformers_imported"] = f"not importable ({err})"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(
            device=p.name,
            device_count=torch.cuda.device_count(),
            gpu_mem_gb=round(p.total_memory / 1e9, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env


class PhaseTimeout(Exception):
    pass


@contextmanager
def time_cap(seconds: float | None):
    """Raise PhaseTimeout in the main thread after `seconds` (SIGALRM; None or 0: no cap)."""
    if not seconds or seconds <= 0:
        yield
        return

    def _fire(*_):
        raise PhaseTimeout(f"cut off after its cap of {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cuda_reset() -> bool:
    import torch

    if not torch.cuda.is_available():
        return False
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return True


def peak_gb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 1e9, 2)


def free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Report:
    """A JSON of phases, rewritten after every phase, so a killed run keeps what it measured.
    Phases run under a total budget: one whose cap does not fit in what is left is skipped."""

    def __init__(self, path: Path, data: dict, budget_s: float | None = None):
        self.path, self.data = Path(path), data
        self.t0, self.budget_s = time.perf_counter(), budget_s
        self.write()

    def left(self) -> float:
        if not self.budget_s:
            return float("inf")
        return self.budget_s - (time.perf_counter() - self.t0)

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.perf_counter() - self.t0, 1)
        write_json(self.path, self.data)

    def phase(self, name: str, fn, *args, cap_s: float | None = None, need_s: float = 0.0):
        """Run fn(*args) -> dict of numbers under a cap of `cap_s` seconds (at most what the
        budget has left); record it or its error, wall seconds and peak GPU memory. Skipped
        when less than `need_s` seconds are left."""
        import logging

        log = logging.getLogger("benchmarks")
        left = self.left()
        if left < need_s:
            out = {"ok": None, "skipped": f"{left:.0f} s left of the budget, needs ~{need_s:.0f}"}
            self.data[name] = out
            self.write()
            log.warning("%s skipped: %s", name, out["skipped"])
            return out
        caps = [c for c in (cap_s, left) if c and c != float("inf")]
        cap = min(caps) if caps else None
        cuda = cuda_reset()
        t0 = time.perf_counter()
        try:
            with time_cap(cap):
                out = fn(*args) or {}
            ok = True
        except Exception as err:  # record and go on: the other phases' numbers still count
            out = {
                "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(limit=8),
            }
            ok = False
            log.exception("phase %s failed", name)
        if cuda:
            out["peak_gpu_mem_gb"] = peak_gb()
        out["wall_s"] = round(time.perf_counter() - t0, 2)
        out["cap_s"] = round(cap, 1) if cap else None
        out["ok"] = ok
        self.data[name] = out
        self.write()
        log.info("%s: %s", name, {k: v for k, v in out.items() if k != "traceback"})
        free_cuda()
        return out
