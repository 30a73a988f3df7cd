"""The GPU check of the GPU commands: a job that was meant for a GPU and sees none stops at once.

Without it a job on the wrong node, or on a node whose driver is too old for torch's CUDA build,
trains on CPU until its time limit and is retried. The message says which of those it is.
"""

import os
import shutil
import subprocess


class DeviceError(RuntimeError):
    """A GPU was required and none is usable; the message says what this process sees."""


def _driver_version() -> str:
    """The NVIDIA driver as nvidia-smi reports it, or why it is unknown."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "unknown (no nvidia-smi on PATH)"
    try:
        out = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown (nvidia-smi failed: {err})"
    lines = sorted(set(out.stdout.split()))
    if out.returncode or not lines:
        return f"unknown (nvidia-smi: {(out.stderr or out.stdout).strip()[:200] or out.returncode})"
    return ", ".join(lines)


def describe() -> str:
    """What this process sees: CUDA devices, torch's CUDA build, the driver, and torch's reason."""
    import torch

    count = torch.cuda.device_count()
    reason = ""
    if count == 0:
        try:
            torch.cuda.init()  # raises with torch's own reason (no CUDA build, driver too old)
        except Exception as err:  # noqa: BLE001 - any reason is worth showing
            reason = f"; torch says: {str(err).strip().splitlines()[0]}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (
        f"{count} CUDA device(s) visible (CUDA_VISIBLE_DEVICES="
        f"{'unset' if visible is None else repr(visible)}), torch {torch.__version__} built "
        f"for CUDA {torch.version.cuda or 'none (a CPU-only build)'}, NVIDIA driver "
        f"{_driver_version()}{reason}"
    )


def require_gpu(command: str) -> None:
    """Raise DeviceError unless torch can use a CUDA device."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return
    raise DeviceError(
        f"{command}: this job needs a GPU and sees none: {describe()}. Run it on a GPU node "
        "whose driver supports torch's CUDA version (see README, 'GPU driver'), or set "
        "compute.allow_cpu: true in the config to run it on CPU."
    )
